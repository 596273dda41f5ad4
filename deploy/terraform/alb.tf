# The internet-facing load balancer every app is served by: an HTTP listener
# (redirecting to HTTPS when `certificate_arn` is set) and, with a
# certificate, an HTTPS listener. Both answer 404 for hosts no rule matches;
# the platform adds a host rule per app (`APP.<apps_domain>`) on the apps'
# listener (`listener_arn`).

resource "aws_lb" "main" {
  name               = var.prefix
  internal           = false
  load_balancer_type = "application"
  ip_address_type    = "ipv4"
  security_groups    = [aws_security_group.alb.id]
  subnets            = aws_subnet.public[*].id

  drop_invalid_header_fields = true

  tags = {
    Name              = var.prefix
    "easydeploy:role" = "alb"
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.main.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = local.https ? "redirect" : "fixed-response"

    dynamic "redirect" {
      for_each = local.https ? [443] : []

      content {
        protocol    = "HTTPS"
        port        = tostring(redirect.value)
        status_code = "HTTP_301"
      }
    }

    dynamic "fixed_response" {
      for_each = local.https ? [] : [404]

      content {
        content_type = "text/plain"
        message_body = "No app is deployed at this address."
        status_code  = tostring(fixed_response.value)
      }
    }
  }
}

resource "aws_lb_listener" "https" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.main.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "text/plain"
      message_body = "No app is deployed at this address."
      status_code  = "404"
    }
  }
}

# The platform's API, on a listener of its own (`platform_port`), so that no
# app's host rule can ever shadow or take over its route.

resource "aws_lb_target_group" "platform" {
  # Apps' target groups are `<prefix>-<app>` and app names start with a
  # letter: a double hyphen never collides with one.
  name                 = "${var.prefix}--platform"
  port                 = 8080
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = aws_vpc.main.id
  deregistration_delay = 30

  health_check {
    path                = "/healthz"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = {
    Name              = "${var.prefix}-platform"
    "easydeploy:role" = "platform"
  }
}

resource "aws_lb_listener" "platform" {
  load_balancer_arn = aws_lb.main.arn
  port              = local.platform_port
  protocol          = local.https ? "HTTPS" : "HTTP"
  ssl_policy        = local.https ? var.ssl_policy : null
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.platform.arn
  }
}

# DNS, when the apps domain's zone is in Route 53: `*.<apps_domain>` (apps,
# and the platform's default host name) to the load balancer.

resource "aws_route53_record" "apps" {
  count = var.route53_zone_id != null ? 1 : 0

  zone_id = var.route53_zone_id
  name    = "*.${var.apps_domain}"
  type    = "A"

  alias {
    name                   = aws_lb.main.dns_name
    zone_id                = aws_lb.main.zone_id
    evaluate_target_health = false
  }
}
