# The first outputs are the contract with the platform: each is a field of
# `Infrastructure` (crates/aws/src/infra.rs), so that
#
#   terraform output -json > outputs.json
#   easydeploy aws bootstrap --from-terraform outputs.json
#
# adopts this infrastructure. Each has the same value as the field of
# `local.infrastructure` (main.tf) that the platform's own task is given.

output "prefix" {
  description = "Prefix of the shared resources' names."
  value       = var.prefix
}

output "region" {
  description = "Region everything is in."
  value       = local.region
}

output "apps_domain" {
  description = "Apps are served at `APP.<apps_domain>`."
  value       = var.apps_domain
}

output "vpc_id" {
  description = "The VPC."
  value       = aws_vpc.main.id
}

output "public_subnet_ids" {
  description = "The two public subnets (the load balancer), in two AZs."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "The two private subnets (tasks, EFS mount targets), in two AZs."
  value       = aws_subnet.private[*].id
}

output "alb_security_group_id" {
  description = "Security group of the load balancer."
  value       = aws_security_group.alb.id
}

output "tasks_security_group_id" {
  description = "Security group of the tasks (any TCP port from the load balancer)."
  value       = aws_security_group.tasks.id
}

output "efs_security_group_id" {
  description = "Security group of the EFS mount targets (NFS from the tasks)."
  value       = aws_security_group.efs.id
}

output "load_balancer_arn" {
  description = "The internet-facing load balancer."
  value       = aws_lb.main.arn
}

output "load_balancer_dns" {
  description = "DNS name of the load balancer: point `*.<apps_domain>` at it."
  value       = aws_lb.main.dns_name
}

output "listener_arn" {
  description = "The listener apps' host rules go on (HTTPS with a certificate, else HTTP)."
  value       = local.https ? aws_lb_listener.https[0].arn : aws_lb_listener.http.arn
}

output "http_listener_arn" {
  description = "The HTTP listener (redirects to HTTPS when there is an HTTPS listener)."
  value       = aws_lb_listener.http.arn
}

output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.main.name
}

output "bucket" {
  description = "The artifacts and sources bucket."
  value       = aws_s3_bucket.artifacts.id
}

output "file_system_id" {
  description = "The EFS file system of the workspaces."
  value       = aws_efs_file_system.workspaces.id
}

output "mount_target_ids" {
  description = "Its mount targets, one per private subnet."
  value       = aws_efs_mount_target.workspaces[*].id
}

output "codebuild_role_arn" {
  description = "Role the apps' CodeBuild projects run as."
  value       = aws_iam_role.codebuild.arn
}

output "execution_role_arn" {
  description = "ECS task execution role of the apps' tasks (pulls images, writes logs)."
  value       = aws_iam_role.execution.arn
}

# Extras, for people.

output "platform_url" {
  description = "URL of the platform's API (EASYDEPLOY_URL), once DNS points at the load balancer."
  value       = local.platform_url
}

output "platform_service_name" {
  description = "ECS service running the platform (for `aws ecs execute-command`, logs and redeploys)."
  value       = aws_ecs_service.platform.name
}

output "platform_task_role_arn" {
  description = "Role the platform's AWS adapters run as."
  value       = aws_iam_role.platform_task.arn
}

output "platform_log_group" {
  description = "CloudWatch log group of the platform's own output."
  value       = aws_cloudwatch_log_group.platform.name
}

output "admin_token_parameter" {
  description = "SSM parameter holding the admin API token (EASYDEPLOY_TOKEN): `aws ssm get-parameter --with-decryption --name ...`."
  value       = aws_ssm_parameter.admin_token.name
}

output "load_balancer_zone_id" {
  description = "Hosted zone of the load balancer, for alias records."
  value       = aws_lb.main.zone_id
}

output "nat_gateway_public_ip" {
  description = "Address the private subnets reach the internet from (allow it on git hosts' allow-lists); null without a NAT gateway."
  value       = one(aws_eip.nat[*].public_ip)
}
