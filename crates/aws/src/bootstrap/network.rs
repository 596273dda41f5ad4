//! VPC, two public and two private subnets in two AZs, internet and NAT
//! gateways, route tables and security groups.

use super::BootstrapOptions;
use crate::clients::AwsClients;
use crate::error::err;
use crate::{TAG_INFRA, TAG_ROLE};
use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, IpPermission, IpRange, ResourceType, Tag, TagSpecification,
    UserIdGroupPair,
};
use easydeploy_core::ports::{BackendError, BackendResult};

/// The network part of the infrastructure.
pub(crate) struct Network {
    pub vpc_id: String,
    pub public_subnets: Vec<String>,
    pub private_subnets: Vec<String>,
    pub alb_sg: String,
    pub tasks_sg: String,
    pub efs_sg: String,
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tags(kind: ResourceType, prefix: &str, role: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(
            Tag::builder()
                .key("Name")
                .value(format!("{prefix}-{role}"))
                .build(),
        )
        .tags(Tag::builder().key(TAG_INFRA).value(prefix).build())
        .tags(Tag::builder().key(TAG_ROLE).value(role).build())
        .build()
}

fn mine(prefix: &str, role: &str) -> [Filter; 2] {
    [
        filter(&format!("tag:{TAG_INFRA}"), prefix),
        filter(&format!("tag:{TAG_ROLE}"), role),
    ]
}

/// Makes what is missing of the network.
pub(crate) async fn ensure(clients: &AwsClients, options: &BootstrapOptions) -> BackendResult<Network> {
    let ec2 = &clients.ec2;
    let prefix = options.prefix.as_str();
    let vpc_id = ensure_vpc(clients, prefix, &options.vpc_cidr).await?;

    let zones = ec2
        .describe_availability_zones()
        .filters(filter("state", "available"))
        .send()
        .await
        .map_err(err("list the availability zones"))?;
    let mut zones: Vec<String> = zones
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name().map(str::to_owned))
        .collect();
    zones.sort();
    if zones.len() < 2 {
        return Err(BackendError::permanent(format!(
            "the region {} has fewer than two availability zones",
            clients.region()
        )));
    }
    let base = cidr_base(&options.vpc_cidr)?;
    let mut public_subnets = Vec::new();
    let mut private_subnets = Vec::new();
    for (i, zone) in zones.iter().take(2).enumerate() {
        let public = format!("{base}.{}.0/20", i * 16);
        let private = format!("{base}.{}.0/20", 128 + i * 16);
        public_subnets
            .push(ensure_subnet(clients, prefix, &vpc_id, &format!("public-{i}"), zone, &public).await?);
        private_subnets
            .push(ensure_subnet(clients, prefix, &vpc_id, &format!("private-{i}"), zone, &private).await?);
    }
    for subnet in &public_subnets {
        ec2.modify_subnet_attribute()
            .subnet_id(subnet)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .map_err(err("make the public subnets assign public addresses"))?;
    }

    let igw = ensure_internet_gateway(clients, prefix, &vpc_id).await?;
    let public_rt = ensure_route_table(clients, prefix, &vpc_id, "public", &public_subnets).await?;
    ensure_default_route(clients, &public_rt, Route::Gateway(&igw)).await?;
    let private_rt = ensure_route_table(clients, prefix, &vpc_id, "private", &private_subnets).await?;
    if options.nat_gateway {
        let nat = ensure_nat_gateway(clients, prefix, &public_subnets[0]).await?;
        ensure_default_route(clients, &private_rt, Route::Nat(&nat)).await?;
    }

    let alb_sg = ensure_security_group(clients, prefix, &vpc_id, "alb", "Easy Deploy load balancer").await?;
    let tasks_sg =
        ensure_security_group(clients, prefix, &vpc_id, "tasks", "Easy Deploy app replicas").await?;
    let efs_sg =
        ensure_security_group(clients, prefix, &vpc_id, "efs", "Easy Deploy workspaces (EFS)").await?;
    for port in [80, 443] {
        allow(clients, &alb_sg, port, port, Source::Anywhere).await?;
    }
    allow(clients, &tasks_sg, 0, 65535, Source::Group(&alb_sg)).await?;
    allow(clients, &efs_sg, 2049, 2049, Source::Group(&tasks_sg)).await?;
    Ok(Network {
        vpc_id,
        public_subnets,
        private_subnets,
        alb_sg,
        tasks_sg,
        efs_sg,
    })
}

/// `10.0` of `10.0.0.0/16`.
fn cidr_base(cidr: &str) -> BackendResult<String> {
    let octets: Vec<&str> = cidr.split(['.', '/']).collect();
    match octets.as_slice() {
        [a, b, _, _, "16"] => Ok(format!("{a}.{b}")),
        _ => Err(BackendError::permanent(format!(
            "the VPC CIDR {cidr} is not a /16 block"
        ))),
    }
}

async fn ensure_vpc(clients: &AwsClients, prefix: &str, cidr: &str) -> BackendResult<String> {
    let ec2 = &clients.ec2;
    let found = ec2
        .describe_vpcs()
        .set_filters(Some(mine(prefix, "vpc").to_vec()))
        .send()
        .await
        .map_err(err("look up the VPC"))?;
    if let Some(id) = found.vpcs().iter().find_map(|v| v.vpc_id()) {
        return Ok(id.to_owned());
    }
    let vpc = ec2
        .create_vpc()
        .cidr_block(cidr)
        .tag_specifications(tags(ResourceType::Vpc, prefix, "vpc"))
        .send()
        .await
        .map_err(err("create the VPC"))?;
    let id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_owned();
    for hostnames in [false, true] {
        let mut call = ec2.modify_vpc_attribute().vpc_id(&id);
        let on = AttributeBooleanValue::builder().value(true).build();
        call = if hostnames {
            call.enable_dns_hostnames(on)
        } else {
            call.enable_dns_support(on)
        };
        call.send().await.map_err(err("enable DNS in the VPC"))?;
    }
    tracing::info!(vpc = %id, "created the VPC");
    Ok(id)
}

async fn ensure_subnet(
    clients: &AwsClients,
    prefix: &str,
    vpc: &str,
    role: &str,
    zone: &str,
    cidr: &str,
) -> BackendResult<String> {
    let ec2 = &clients.ec2;
    let found = ec2
        .describe_subnets()
        .set_filters(Some(mine(prefix, role).to_vec()))
        .filters(filter("vpc-id", vpc))
        .send()
        .await
        .map_err(err("look up the subnets"))?;
    if let Some(id) = found.subnets().iter().find_map(|s| s.subnet_id()) {
        return Ok(id.to_owned());
    }
    let subnet = ec2
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block(cidr)
        .availability_zone(zone)
        .tag_specifications(tags(ResourceType::Subnet, prefix, role))
        .send()
        .await
        .map_err(err(&format!("create the {role} subnet")))?;
    Ok(subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap_or_default()
        .to_owned())
}

async fn ensure_internet_gateway(clients: &AwsClients, prefix: &str, vpc: &str) -> BackendResult<String> {
    let ec2 = &clients.ec2;
    let found = ec2
        .describe_internet_gateways()
        .set_filters(Some(mine(prefix, "igw").to_vec()))
        .send()
        .await
        .map_err(err("look up the internet gateway"))?;
    let (id, attached) = match found.internet_gateways().first() {
        Some(gw) => (
            gw.internet_gateway_id().unwrap_or_default().to_owned(),
            gw.attachments().iter().any(|a| a.vpc_id() == Some(vpc)),
        ),
        None => {
            let gw = ec2
                .create_internet_gateway()
                .tag_specifications(tags(ResourceType::InternetGateway, prefix, "igw"))
                .send()
                .await
                .map_err(err("create the internet gateway"))?;
            let id = gw
                .internet_gateway()
                .and_then(|g| g.internet_gateway_id())
                .unwrap_or_default()
                .to_owned();
            (id, false)
        }
    };
    if !attached {
        ec2.attach_internet_gateway()
            .internet_gateway_id(&id)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(err("attach the internet gateway to the VPC"))?;
    }
    Ok(id)
}

async fn ensure_route_table(
    clients: &AwsClients,
    prefix: &str,
    vpc: &str,
    role: &str,
    subnets: &[String],
) -> BackendResult<String> {
    let ec2 = &clients.ec2;
    let role = format!("{role}-routes");
    let found = ec2
        .describe_route_tables()
        .set_filters(Some(mine(prefix, &role).to_vec()))
        .send()
        .await
        .map_err(err("look up the route tables"))?;
    let (id, associated): (String, Vec<String>) = match found.route_tables().first() {
        Some(table) => (
            table.route_table_id().unwrap_or_default().to_owned(),
            table
                .associations()
                .iter()
                .filter_map(|a| a.subnet_id().map(str::to_owned))
                .collect(),
        ),
        None => {
            let table = ec2
                .create_route_table()
                .vpc_id(vpc)
                .tag_specifications(tags(ResourceType::RouteTable, prefix, &role))
                .send()
                .await
                .map_err(err("create a route table"))?;
            let id = table
                .route_table()
                .and_then(|t| t.route_table_id())
                .unwrap_or_default()
                .to_owned();
            (id, Vec::new())
        }
    };
    for subnet in subnets.iter().filter(|s| !associated.contains(s)) {
        ec2.associate_route_table()
            .route_table_id(&id)
            .subnet_id(subnet)
            .send()
            .await
            .map_err(err("associate a subnet with its route table"))?;
    }
    Ok(id)
}

enum Route<'a> {
    Gateway(&'a str),
    Nat(&'a str),
}

async fn ensure_default_route(clients: &AwsClients, table: &str, target: Route<'_>) -> BackendResult<()> {
    let ec2 = &clients.ec2;
    let found = ec2
        .describe_route_tables()
        .route_table_ids(table)
        .send()
        .await
        .map_err(err("look up a route table"))?;
    let exists = found
        .route_tables()
        .iter()
        .flat_map(|t| t.routes())
        .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0"));
    if exists {
        return Ok(());
    }
    let call = ec2
        .create_route()
        .route_table_id(table)
        .destination_cidr_block("0.0.0.0/0");
    let call = match target {
        Route::Gateway(id) => call.gateway_id(id),
        Route::Nat(id) => call.nat_gateway_id(id),
    };
    call.send().await.map_err(err("add the default route"))?;
    Ok(())
}

async fn ensure_nat_gateway(clients: &AwsClients, prefix: &str, subnet: &str) -> BackendResult<String> {
    let ec2 = &clients.ec2;
    let found = ec2
        .describe_nat_gateways()
        .set_filter(Some(mine(prefix, "nat").to_vec()))
        .send()
        .await
        .map_err(err("look up the NAT gateway"))?;
    let live = found
        .nat_gateways()
        .iter()
        .filter(|n| {
            !matches!(
                n.state().map(|s| s.as_str()),
                Some("deleted" | "deleting" | "failed")
            )
        })
        .find_map(|n| n.nat_gateway_id());
    if let Some(id) = live {
        return Ok(id.to_owned());
    }
    let addresses = ec2
        .describe_addresses()
        .set_filters(Some(mine(prefix, "nat-ip").to_vec()))
        .send()
        .await
        .map_err(err("look up the NAT gateway's address"))?;
    let allocation = match addresses.addresses().iter().find_map(|a| a.allocation_id()) {
        Some(id) => id.to_owned(),
        None => ec2
            .allocate_address()
            .domain(aws_sdk_ec2::types::DomainType::Vpc)
            .tag_specifications(tags(ResourceType::ElasticIp, prefix, "nat-ip"))
            .send()
            .await
            .map_err(err("allocate the NAT gateway's address"))?
            .allocation_id()
            .unwrap_or_default()
            .to_owned(),
    };
    let nat = ec2
        .create_nat_gateway()
        .subnet_id(subnet)
        .allocation_id(allocation)
        .client_token(format!("{prefix}-nat"))
        .tag_specifications(tags(ResourceType::Natgateway, prefix, "nat"))
        .send()
        .await
        .map_err(err("create the NAT gateway"))?;
    Ok(nat
        .nat_gateway()
        .and_then(|n| n.nat_gateway_id())
        .unwrap_or_default()
        .to_owned())
}

async fn ensure_security_group(
    clients: &AwsClients,
    prefix: &str,
    vpc: &str,
    role: &str,
    description: &str,
) -> BackendResult<String> {
    let ec2 = &clients.ec2;
    let name = format!("{prefix}-{role}");
    let found = ec2
        .describe_security_groups()
        .filters(filter("vpc-id", vpc))
        .filters(filter("group-name", &name))
        .send()
        .await
        .map_err(err("look up the security groups"))?;
    if let Some(id) = found.security_groups().iter().find_map(|g| g.group_id()) {
        return Ok(id.to_owned());
    }
    let group = ec2
        .create_security_group()
        .vpc_id(vpc)
        .group_name(&name)
        .description(description)
        .tag_specifications(tags(ResourceType::SecurityGroup, prefix, role))
        .send()
        .await
        .map_err(err(&format!("create the security group {name}")))?;
    Ok(group.group_id().unwrap_or_default().to_owned())
}

enum Source<'a> {
    Anywhere,
    Group(&'a str),
}

/// Adds an ingress rule unless the group has it.
async fn allow(
    clients: &AwsClients,
    group: &str,
    from: i32,
    to: i32,
    source: Source<'_>,
) -> BackendResult<()> {
    let ec2 = &clients.ec2;
    let found = ec2
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .map_err(err("look up a security group"))?;
    let present = found
        .security_groups()
        .iter()
        .flat_map(|g| g.ip_permissions())
        .any(|p| {
            p.from_port() == Some(from)
                && p.to_port() == Some(to)
                && match &source {
                    Source::Anywhere => p.ip_ranges().iter().any(|r| r.cidr_ip() == Some("0.0.0.0/0")),
                    Source::Group(id) => p.user_id_group_pairs().iter().any(|g| g.group_id() == Some(id)),
                }
        });
    if present {
        return Ok(());
    }
    let permission = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(from)
        .to_port(to);
    let permission = match source {
        Source::Anywhere => permission.ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build()),
        Source::Group(id) => permission.user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build()),
    };
    match ec2
        .authorize_security_group_ingress()
        .group_id(group)
        .ip_permissions(permission.build())
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if crate::error::code_of(&e) == Some("InvalidPermission.Duplicate") => Ok(()),
        Err(e) => Err(crate::error::aws_error("open a security group port", e)),
    }
}
