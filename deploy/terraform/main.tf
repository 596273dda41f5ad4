# Account, region and the values several files share.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  # Apps' host rules go on the HTTPS listener when there is one.
  https = var.certificate_arn != null

  bucket_name       = coalesce(var.bucket_name, "${var.prefix}-artifacts-${local.account_id}-${local.region}")
  platform_hostname = coalesce(var.platform_hostname, "${var.prefix}.${var.apps_domain}")
  platform_port     = coalesce(var.platform_port, local.https ? 8443 : 8080)
  platform_url      = "${local.https ? "https" : "http"}://${local.platform_hostname}:${local.platform_port}"

  # What `Infrastructure::from_terraform_outputs` reads (crates/aws/src/infra.rs):
  # the platform's task gets it as its `aws-infrastructure.json`, and
  # outputs.tf exposes each field as an output of the same name.
  infrastructure = {
    prefix                  = var.prefix
    region                  = local.region
    apps_domain             = var.apps_domain
    vpc_id                  = aws_vpc.main.id
    public_subnet_ids       = aws_subnet.public[*].id
    private_subnet_ids      = aws_subnet.private[*].id
    alb_security_group_id   = aws_security_group.alb.id
    tasks_security_group_id = aws_security_group.tasks.id
    efs_security_group_id   = aws_security_group.efs.id
    load_balancer_arn       = aws_lb.main.arn
    load_balancer_dns       = aws_lb.main.dns_name
    listener_arn            = local.https ? aws_lb_listener.https[0].arn : aws_lb_listener.http.arn
    http_listener_arn       = aws_lb_listener.http.arn
    cluster_name            = aws_ecs_cluster.main.name
    bucket                  = aws_s3_bucket.artifacts.id
    file_system_id          = aws_efs_file_system.workspaces.id
    mount_target_ids        = aws_efs_mount_target.workspaces[*].id
    codebuild_role_arn      = aws_iam_role.codebuild.arn
    execution_role_arn      = aws_iam_role.execution.arn
  }
}
