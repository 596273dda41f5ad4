# The artifacts and sources bucket (versioned, encrypted, private, TLS only)
# and the EFS file system of the workspaces, with a mount target in each
# private subnet and an access point for the platform's own data directory.

resource "aws_s3_bucket" "artifacts" {
  bucket        = local.bucket_name
  force_destroy = var.bucket_force_destroy

  tags = {
    "easydeploy:role" = "artifacts"
  }
}

resource "aws_s3_bucket_ownership_controls" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  block_public_acls       = true
  ignore_public_acls      = true
  block_public_policy     = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    id     = "expire-old-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.artifacts]
}

data "aws_iam_policy_document" "artifacts_tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.artifacts.arn,
      "${aws_s3_bucket.artifacts.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  policy = data.aws_iam_policy_document.artifacts_tls_only.json

  # A bucket policy is only accepted once the public access block is in place.
  depends_on = [aws_s3_bucket_public_access_block.artifacts]
}

resource "aws_efs_file_system" "workspaces" {
  creation_token   = var.prefix
  encrypted        = true
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"

  tags = {
    Name              = "${var.prefix}-workspaces"
    "easydeploy:role" = "workspaces"
  }
}

resource "aws_efs_mount_target" "workspaces" {
  count = 2

  file_system_id  = aws_efs_file_system.workspaces.id
  subnet_id       = aws_subnet.private[count.index].id
  security_groups = [aws_security_group.efs.id]
}

# The platform's data directory (SQLite state, admin token, the
# infrastructure file), outside the apps' workspaces.
resource "aws_efs_access_point" "platform" {
  file_system_id = aws_efs_file_system.workspaces.id

  posix_user {
    uid = 0
    gid = 0
  }

  root_directory {
    path = "/${var.prefix}-platform"

    creation_info {
      owner_uid   = 0
      owner_gid   = 0
      permissions = "0700"
    }
  }

  tags = {
    Name              = "${var.prefix}-platform"
    "easydeploy:role" = "platform-data"
  }
}
