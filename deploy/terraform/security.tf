# Security groups: the load balancer takes HTTP and HTTPS from anywhere (and
# the platform's API port from `platform_allowed_cidrs`), the
# tasks (apps and the platform) any TCP port from the load balancer, and the
# EFS mount targets NFS from the tasks. Terraform removes the default
# allow-all egress rule of a group it creates, so egress is explicit.

resource "aws_security_group" "alb" {
  name        = "${var.prefix}-alb"
  description = "Easy Deploy load balancer"
  vpc_id      = aws_vpc.main.id

  tags = {
    Name              = "${var.prefix}-alb"
    "easydeploy:role" = "alb"
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from anywhere"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from anywhere"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "alb_platform" {
  for_each = toset(var.platform_allowed_cidrs)

  security_group_id = aws_security_group.alb.id
  description       = "The platform's API"
  ip_protocol       = "tcp"
  from_port         = local.platform_port
  to_port           = local.platform_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the tasks behind the target groups"
  ip_protocol                  = "tcp"
  from_port                    = 0
  to_port                      = 65535
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_security_group" "tasks" {
  name        = "${var.prefix}-tasks"
  description = "Easy Deploy app replicas"
  vpc_id      = aws_vpc.main.id

  tags = {
    Name              = "${var.prefix}-tasks"
    "easydeploy:role" = "tasks"
  }
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Any TCP port from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = 0
  to_port                      = 65535
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "tasks_all" {
  security_group_id = aws_security_group.tasks.id
  description       = "Registries, git hosts, AWS APIs, EFS"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_security_group" "efs" {
  name        = "${var.prefix}-efs"
  description = "Easy Deploy workspaces (EFS)"
  vpc_id      = aws_vpc.main.id

  tags = {
    Name              = "${var.prefix}-efs"
    "easydeploy:role" = "efs"
  }
}

resource "aws_vpc_security_group_ingress_rule" "efs_from_tasks" {
  security_group_id            = aws_security_group.efs.id
  description                  = "NFS from the tasks"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.tasks.id
}
