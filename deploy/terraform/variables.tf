# ---------------------------------------------------------------------------
# Shared infrastructure (what `easydeploy aws bootstrap` would create)
# ---------------------------------------------------------------------------

variable "prefix" {
  description = "Prefix of every shared resource's name and value of its `easydeploy:infrastructure` tag (the platform's `EASYDEPLOY_AWS_PREFIX`)."
  type        = string
  default     = "easydeploy"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.prefix))
    error_message = "The prefix must be 2 to 20 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen (it names the ALB, target groups and the S3 bucket)."
  }
}

variable "region" {
  description = "AWS region to create everything in."
  type        = string
  default     = "us-east-1"
}

variable "apps_domain" {
  description = "Apps are served at `APP.<apps_domain>`: point `*.<apps_domain>` at the load balancer (or set `route53_zone_id`)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", var.apps_domain))
    error_message = "The apps domain must be a lowercase DNS name such as apps.example.com."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC; the subnets are its first two and ninth and tenth sixteenths (/20s of a /16), like the bootstrap's."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrsubnet(var.vpc_cidr, 4, 15))
    error_message = "The VPC CIDR must be a valid IPv4 block of /24 or larger."
  }
}

variable "availability_zones" {
  description = "Two availability zones for the subnets; empty picks the region's first two available zones."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || length(var.availability_zones) == 2
    error_message = "Give exactly two availability zones, or none."
  }
}

variable "nat_gateway" {
  description = "Create a NAT gateway so tasks in the private subnets reach ECR, git hosts and AWS APIs. Without it the platform runs in a public subnet with a public IP, and apps' tasks need VPC endpoints."
  type        = bool
  default     = true
}

variable "certificate_arn" {
  description = "ACM certificate (for `*.<apps_domain>`) of an HTTPS listener; the HTTP listener then redirects to it. Null: HTTP only."
  type        = string
  default     = null
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "bucket_name" {
  description = "Name of the artifacts and sources bucket. Null: `<prefix>-artifacts-<account>-<region>`, as the bootstrap names it."
  type        = string
  default     = null
}

variable "bucket_force_destroy" {
  description = "Let `terraform destroy` delete the artifacts bucket even when it still holds objects."
  type        = bool
  default     = false
}

variable "noncurrent_version_expiration_days" {
  description = "Days the bucket keeps an overwritten or deleted object's old versions."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "Keep old versions at least one day."
  }
}

variable "container_insights" {
  description = "Turn on CloudWatch Container Insights for the ECS cluster."
  type        = bool
  default     = true
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone of `apps_domain`: when set, a wildcard alias record `*.<apps_domain>` points at the load balancer. Null: manage DNS yourself."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------
# The platform itself, as an ECS service
# ---------------------------------------------------------------------------

variable "platform_image" {
  description = "Image of Easy Deploy (built from the repository's Dockerfile and pushed to a registry the tasks can pull from, e.g. an ECR repository); it runs `easydeploy server --runtime aws`."
  type        = string
}

variable "platform_hostname" {
  description = "Host name of the platform's API URL (`EASYDEPLOY_PUBLIC_URL`). Null: `<prefix>.<apps_domain>`, which the `*.<apps_domain>` record and certificate already cover."
  type        = string
  default     = null
}

variable "platform_port" {
  description = "Load balancer port of the platform's API (a listener of its own, so no app's host rule can shadow it). Null: 8443 with a certificate, else 8080."
  type        = number
  default     = null
}

variable "platform_allowed_cidrs" {
  description = "Client CIDR blocks allowed to reach the platform's API port on the load balancer (the API also requires its token)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "platform_cpu" {
  description = "CPU units of the platform's Fargate task (1024 = one vCPU)."
  type        = number
  default     = 1024
}

variable "platform_memory" {
  description = "Memory of the platform's Fargate task, in MiB (valid for `platform_cpu` on Fargate)."
  type        = number
  default     = 2048
}

variable "platform_cpu_architecture" {
  description = "CPU architecture of the platform's image: X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.platform_cpu_architecture)
    error_message = "The CPU architecture must be X86_64 or ARM64."
  }
}

variable "platform_environment" {
  description = "Extra environment variables of the platform (e.g. `EASYDEPLOY_WORKERS`, `EASYDEPLOY_HEALTH_TIMEOUT`); they override the module's."
  type        = map(string)
  default     = {}
}

variable "log_retention_days" {
  description = "Days CloudWatch Logs keeps the platform's own log."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "CloudWatch Logs does not offer that retention period."
  }
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}
