from cardfraud.cli import main

main()
