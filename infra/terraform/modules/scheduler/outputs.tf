output "schedule_names" {
  description = "Names of the start and stop schedules."
  value       = [aws_scheduler_schedule.start.name, aws_scheduler_schedule.stop.name]
}
