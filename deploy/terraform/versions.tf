terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "aws" {
  region = var.region

  # Every resource carries the same `easydeploy:infrastructure` tag that
  # `easydeploy aws bootstrap` puts on what it creates.
  default_tags {
    tags = merge(var.tags, {
      "easydeploy:infrastructure" = var.prefix
    })
  }
}
