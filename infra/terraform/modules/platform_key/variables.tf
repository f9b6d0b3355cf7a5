variable "name_prefix" {
  type        = string
  description = "Prefix of the key alias, such as cardfraud-dev."
}

variable "aws_region" {
  type        = string
  description = "Region of the CloudWatch Logs service that encrypts log groups with the key."
}
