provider "aws" {
  region = var.aws_region

  # Applied to every resource that supports tags. The AWS provider merges these
  # with tags set on a resource, and the resource's own value wins on a clash.
  default_tags {
    tags = {
      project       = var.project
      environment   = var.environment
      owner         = var.owner
      "cost-center" = var.cost_center
    }
  }
}
