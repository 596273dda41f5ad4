# The ECS cluster apps run in, and Easy Deploy itself as one of its services:
# `easydeploy server --runtime aws` on Fargate, its data directory on EFS,
# its API behind the load balancer's platform listener.

resource "aws_ecs_cluster" "main" {
  name = var.prefix

  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "main" {
  cluster_name       = aws_ecs_cluster.main.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_cloudwatch_log_group" "platform" {
  name              = "/${var.prefix}/platform"
  retention_in_days = var.log_retention_days
}

# ---------------------------------------------------------------------------
# Secrets: the admin API token and the key tenants' access keys are encrypted
# with. Generated once and kept in the Terraform state and SSM.
# ---------------------------------------------------------------------------

resource "random_id" "admin_token" {
  byte_length = 32
}

resource "random_id" "access_key_cipher" {
  byte_length = 32
}

resource "aws_ssm_parameter" "admin_token" {
  name        = "/${var.prefix}/platform/admin-token"
  description = "Easy Deploy's admin API token (EASYDEPLOY_TOKEN)"
  type        = "SecureString"
  value       = "ed_${random_id.admin_token.hex}"
}

resource "aws_ssm_parameter" "access_key_cipher" {
  name        = "/${var.prefix}/platform/secret-key"
  description = "Key (64 hex digits) Easy Deploy encrypts tenants' IAM access keys with (EASYDEPLOY_AWS_SECRET_KEY)"
  type        = "SecureString"
  value       = random_id.access_key_cipher.hex
}

# ---------------------------------------------------------------------------
# The platform's roles: its own execution role (reads its two secrets; the
# shared execution role of the apps cannot), and its task role (what the
# AWS adapters call).
# ---------------------------------------------------------------------------

resource "aws_iam_role" "platform_execution" {
  name               = "${var.prefix}-platform-execution"
  path               = "/easydeploy-platform/"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "platform_execution" {
  role       = aws_iam_role.platform_execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "platform_execution" {
  statement {
    sid     = "Secrets"
    actions = ["ssm:GetParameters"]
    resources = [
      aws_ssm_parameter.admin_token.arn,
      aws_ssm_parameter.access_key_cipher.arn,
    ]
  }
}

resource "aws_iam_role_policy" "platform_execution" {
  name   = "easydeploy-platform-secrets"
  role   = aws_iam_role.platform_execution.id
  policy = data.aws_iam_policy_document.platform_execution.json
}

# Outside the `/easydeploy/` path the platform manages roles in, so that it
# can never change its own permissions.
resource "aws_iam_role" "platform_task" {
  name               = "${var.prefix}-platform"
  path               = "/easydeploy-platform/"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

locals {
  arn_prefix = {
    ecr       = "arn:${local.partition}:ecr:${local.region}:${local.account_id}"
    codebuild = "arn:${local.partition}:codebuild:${local.region}:${local.account_id}"
    logs      = "arn:${local.partition}:logs:${local.region}:${local.account_id}"
    iam       = "arn:${local.partition}:iam::${local.account_id}"
  }
}

data "aws_iam_policy_document" "platform_task" {
  statement {
    sid = "Tenants"
    actions = [
      "iam:GetUser",
      "iam:CreateUser",
      "iam:DeleteUser",
      "iam:TagUser",
      "iam:GetUserPolicy",
      "iam:PutUserPolicy",
      "iam:DeleteUserPolicy",
      "iam:ListUserPolicies",
      "iam:ListAccessKeys",
      "iam:CreateAccessKey",
      "iam:DeleteAccessKey",
    ]
    resources = ["${local.arn_prefix.iam}:user/easydeploy/${var.prefix}-tenant-*"]
  }

  statement {
    sid = "TenantTaskRoles"
    actions = [
      "iam:GetRole",
      "iam:CreateRole",
      "iam:DeleteRole",
      "iam:TagRole",
      "iam:GetRolePolicy",
      "iam:PutRolePolicy",
      "iam:DeleteRolePolicy",
      "iam:ListRolePolicies",
      "iam:ListAttachedRolePolicies",
    ]
    resources = ["${local.arn_prefix.iam}:role/easydeploy/${var.prefix}-tenant-*"]
  }

  statement {
    sid     = "PassRoles"
    actions = ["iam:PassRole"]
    resources = [
      "${local.arn_prefix.iam}:role/easydeploy/${var.prefix}-tenant-*",
      aws_iam_role.execution.arn,
      aws_iam_role.codebuild.arn,
    ]

    condition {
      test     = "StringEqualsIfExists"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com", "codebuild.amazonaws.com"]
    }
  }

  statement {
    sid       = "ServiceLinkedRoles"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values = [
        "ecs.amazonaws.com",
        "ecs.application-autoscaling.amazonaws.com",
        "elasticloadbalancing.amazonaws.com",
      ]
    }
  }

  statement {
    sid = "Artifacts"
    actions = [
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
    ]
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
  }

  statement {
    sid = "ArtifactsBucket"
    actions = [
      "s3:ListBucket",
      "s3:ListBucketVersions",
      "s3:GetBucketLocation",
    ]
    resources = [aws_s3_bucket.artifacts.arn]
  }

  statement {
    sid       = "RegistryLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "Registries"
    actions = [
      "ecr:CreateRepository",
      "ecr:DeleteRepository",
      "ecr:DescribeRepositories",
      "ecr:DescribeImages",
      "ecr:ListImages",
      "ecr:BatchGetImage",
      "ecr:BatchDeleteImage",
      "ecr:PutLifecyclePolicy",
      "ecr:PutImageScanningConfiguration",
      "ecr:TagResource",
    ]
    resources = ["${local.arn_prefix.ecr}:repository/${var.prefix}-*"]
  }

  statement {
    sid = "Builds"
    actions = [
      "codebuild:CreateProject",
      "codebuild:UpdateProject",
      "codebuild:DeleteProject",
      "codebuild:BatchGetProjects",
      "codebuild:StartBuild",
      "codebuild:StopBuild",
      "codebuild:BatchGetBuilds",
      "codebuild:ListBuildsForProject",
    ]
    resources = ["${local.arn_prefix.codebuild}:project/${var.prefix}-*"]
  }

  statement {
    sid = "Logs"
    actions = [
      "logs:CreateLogGroup",
      "logs:DeleteLogGroup",
      "logs:PutRetentionPolicy",
      "logs:TagResource",
      "logs:DescribeLogStreams",
      "logs:GetLogEvents",
      "logs:FilterLogEvents",
    ]
    resources = ["${local.arn_prefix.logs}:log-group:/${var.prefix}/*"]
  }

  statement {
    sid = "Describe"
    actions = [
      "logs:DescribeLogGroups",
      "ec2:DescribeSubnets",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeVpcs",
      "elasticfilesystem:DescribeFileSystems",
      "elasticfilesystem:DescribeMountTargets",
      "cloudwatch:GetMetricData",
      "cloudwatch:GetMetricStatistics",
      "cloudwatch:ListMetrics",
    ]
    resources = ["*"]
  }

  statement {
    sid = "Releases"
    actions = [
      "ecs:CreateService",
      "ecs:UpdateService",
      "ecs:DeleteService",
      "ecs:DescribeServices",
      "ecs:DescribeClusters",
      "ecs:ListServices",
      "ecs:ListTasks",
      "ecs:DescribeTasks",
      "ecs:RegisterTaskDefinition",
      "ecs:DeregisterTaskDefinition",
      "ecs:DeleteTaskDefinitions",
      "ecs:DescribeTaskDefinition",
      "ecs:ListTaskDefinitions",
      "ecs:TagResource",
      "ecs:UntagResource",
    ]
    resources = ["*"]
  }

  statement {
    sid = "Routing"
    actions = [
      "elasticloadbalancing:DescribeLoadBalancers",
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeRules",
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTargetGroupAttributes",
      "elasticloadbalancing:DescribeTargetHealth",
      "elasticloadbalancing:DescribeTags",
      "elasticloadbalancing:CreateTargetGroup",
      "elasticloadbalancing:ModifyTargetGroup",
      "elasticloadbalancing:ModifyTargetGroupAttributes",
      "elasticloadbalancing:DeleteTargetGroup",
      "elasticloadbalancing:CreateRule",
      "elasticloadbalancing:ModifyRule",
      "elasticloadbalancing:DeleteRule",
      "elasticloadbalancing:SetRulePriorities",
      "elasticloadbalancing:AddTags",
      "elasticloadbalancing:RemoveTags",
    ]
    resources = ["*"]
  }

  statement {
    sid = "Scaling"
    actions = [
      "application-autoscaling:RegisterScalableTarget",
      "application-autoscaling:DeregisterScalableTarget",
      "application-autoscaling:DescribeScalableTargets",
      "application-autoscaling:PutScalingPolicy",
      "application-autoscaling:DeleteScalingPolicy",
      "application-autoscaling:DescribeScalingPolicies",
      "application-autoscaling:DescribeScalingActivities",
      "application-autoscaling:TagResource",
      # Target tracking policies create and remove their CloudWatch alarms
      # with the caller's permissions.
      "cloudwatch:DescribeAlarms",
      "cloudwatch:PutMetricAlarm",
      "cloudwatch:DeleteAlarms",
    ]
    resources = ["*"]
  }

  statement {
    sid = "DataDirectory"
    actions = [
      "elasticfilesystem:ClientMount",
      "elasticfilesystem:ClientWrite",
      "elasticfilesystem:ClientRootAccess",
    ]
    resources = [aws_efs_file_system.workspaces.arn]

    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [aws_efs_access_point.platform.arn]
    }
  }

  statement {
    sid = "ExecCommand"
    actions = [
      "ssmmessages:CreateControlChannel",
      "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel",
      "ssmmessages:OpenDataChannel",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "platform_task" {
  name   = "easydeploy-platform"
  role   = aws_iam_role.platform_task.id
  policy = data.aws_iam_policy_document.platform_task.json
}

# ---------------------------------------------------------------------------
# The platform's task definition and service
# ---------------------------------------------------------------------------

locals {
  platform_data_dir = "/var/lib/easydeploy"

  platform_environment = merge({
    AWS_REGION                    = local.region
    EASYDEPLOY_RUNTIME            = "aws"
    EASYDEPLOY_DATA_DIR           = local.platform_data_dir
    EASYDEPLOY_API_ADDR           = "0.0.0.0:8080"
    EASYDEPLOY_PROXY_ADDR         = "0.0.0.0:8000"
    EASYDEPLOY_APPS_DOMAIN        = var.apps_domain
    EASYDEPLOY_AWS_PREFIX         = var.prefix
    EASYDEPLOY_PUBLIC_URL         = local.platform_url
    EASYDEPLOY_AWS_INFRASTRUCTURE = jsonencode(local.infrastructure)
  }, var.platform_environment)

  # The image's entrypoint is `easydeploy`; this writes the infrastructure
  # file and the admin token into the data directory first (the server reads
  # both from there), then runs the server in the shell's place.
  platform_start = <<-EOT
    set -eu
    umask 077
    mkdir -p "$EASYDEPLOY_DATA_DIR"
    printf '%s' "$EASYDEPLOY_AWS_INFRASTRUCTURE" > "$EASYDEPLOY_DATA_DIR/aws-infrastructure.json"
    printf '%s\n' "$EASYDEPLOY_ADMIN_TOKEN" > "$EASYDEPLOY_DATA_DIR/admin.token"
    unset EASYDEPLOY_ADMIN_TOKEN EASYDEPLOY_AWS_INFRASTRUCTURE
    exec easydeploy server --runtime aws
  EOT
}

resource "aws_ecs_task_definition" "platform" {
  # Apps' families are `<prefix>-<app>`: an underscore never collides with one.
  family                   = "${var.prefix}_platform"
  network_mode             = "awsvpc"
  requires_compatibilities = ["FARGATE"]
  cpu                      = var.platform_cpu
  memory                   = var.platform_memory
  execution_role_arn       = aws_iam_role.platform_execution.arn
  task_role_arn            = aws_iam_role.platform_task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.platform_cpu_architecture
  }

  volume {
    name = "data"

    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.workspaces.id
      transit_encryption = "ENABLED"

      authorization_config {
        access_point_id = aws_efs_access_point.platform.id
        iam             = "ENABLED"
      }
    }
  }

  container_definitions = jsonencode([
    {
      name       = "easydeploy"
      image      = var.platform_image
      essential  = true
      entryPoint = ["/bin/sh", "-c"]
      command    = [local.platform_start]

      portMappings = [
        {
          name          = "api"
          containerPort = 8080
          protocol      = "tcp"
        },
      ]

      environment = [
        for name, value in local.platform_environment : { name = name, value = value }
      ]

      secrets = [
        { name = "EASYDEPLOY_ADMIN_TOKEN", valueFrom = aws_ssm_parameter.admin_token.arn },
        { name = "EASYDEPLOY_AWS_SECRET_KEY", valueFrom = aws_ssm_parameter.access_key_cipher.arn },
      ]

      mountPoints = [
        {
          sourceVolume  = "data"
          containerPath = local.platform_data_dir
          readOnly      = false
        },
      ]

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.platform.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "platform"
        }
      }

      # In-flight deployments get the server's graceful shutdown.
      stopTimeout = 60
    },
  ])
}

resource "aws_ecs_service" "platform" {
  # Apps' services are named like the apps, which have no underscore.
  name                   = "${var.prefix}_platform"
  cluster                = aws_ecs_cluster.main.id
  task_definition        = aws_ecs_task_definition.platform.arn
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  propagate_tags         = "SERVICE"
  enable_execute_command = true

  # The state is one SQLite database: exactly one task, and never two at once
  # during a deployment.
  desired_count                      = 1
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  health_check_grace_period_seconds  = 120

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    # Without a NAT gateway the private subnets have no way out: the platform
    # then needs a public address to reach AWS APIs and git hosts.
    subnets          = var.nat_gateway ? aws_subnet.private[*].id : aws_subnet.public[*].id
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = !var.nat_gateway
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.platform.arn
    container_name   = "easydeploy"
    container_port   = 8080
  }

  tags = {
    "easydeploy:role" = "platform"
  }

  depends_on = [
    aws_lb_listener.platform,
    aws_efs_mount_target.workspaces,
    aws_iam_role_policy.platform_task,
    aws_route.private_nat,
  ]
}
