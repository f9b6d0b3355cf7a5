resource "aws_ecr_repository" "scorer" {
  name                 = "${var.name_prefix}-scorer"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.force_delete

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
}

# Keeps the newest images; older ones go, which bounds the storage charge. A
# rollback needs the previous image, so keep at least two.
resource "aws_ecr_lifecycle_policy" "scorer" {
  repository = aws_ecr_repository.scorer.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Keep the newest ${var.images_kept} images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.images_kept
        }
        action = { type = "expire" }
      }
    ]
  })
}
