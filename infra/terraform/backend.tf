# Remote state lives in an S3 bucket that exists before `terraform init`.
# The backend is a partial configuration: bucket, key and region come from a
# file passed at init time, so no account-specific value is committed.
#
#   terraform init -backend-config=backend.hcl
#
# backend.hcl.example lists the settings. `use_lockfile = true` locks the state
# with a lock object in the same bucket (Terraform 1.11 or later), so no
# DynamoDB table is needed. The older `dynamodb_table` setting still works but
# Terraform 1.11 marks it deprecated.
terraform {
  backend "s3" {}
}
