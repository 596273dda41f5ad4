//! The Terraform module in `deploy/terraform`, checked without Terraform: every
//! `.tf` file parses (hcl-rs), every reference in it (`var.X`, `local.X`,
//! `aws_x.name`, `data.aws_x.name`, `count.index`, `each.key`, functions)
//! points at something declared, and its outputs are exactly what
//! `Infrastructure::from_terraform_outputs` (what `easydeploy aws bootstrap
//! --from-terraform` runs) needs.

use easydeploy_aws::Infrastructure;
use hcl::edit::expr::{Expression as Expr, ForExpr, FuncCall, Traversal, TraversalOperator};
use hcl::edit::structure::{Attribute, Block};
use hcl::edit::visit::{self, Visit};
use hcl::edit::Span;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

fn module_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/terraform")
}

/// One `.tf` file, parsed twice: hcl-rs's value model (declarations,
/// expression equality) and hcl-edit's syntax tree (references, with spans).
struct File {
    name: String,
    text: String,
    model: hcl::Body,
    syntax: hcl::edit::structure::Body,
}

impl File {
    fn parse(name: &str, text: &str) -> File {
        let model = hcl::parse(text).unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        let syntax =
            hcl::edit::parser::parse_body(text).unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        File {
            name: name.to_owned(),
            text: text.to_owned(),
            model,
            syntax,
        }
    }

    fn line(&self, span: Option<Range<usize>>) -> String {
        match span {
            Some(span) => {
                (self.text[..span.start.min(self.text.len())].matches('\n').count() + 1).to_string()
            }
            None => "?".into(),
        }
    }
}

/// Every `.tf` file of the module, by name.
fn module() -> Vec<File> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(module_dir())
        .expect("deploy/terraform exists")
        .map(|entry| entry.expect("readable directory").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "tf"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
            File::parse(&name, &text)
        })
        .collect()
}

/// What the module declares.
#[derive(Default)]
struct Declarations {
    variables: BTreeMap<String, hcl::Block>,
    locals: BTreeMap<String, hcl::Expression>,
    /// `(type, name)` → whether it has `count` or `for_each`.
    resources: BTreeMap<(String, String), bool>,
    data: BTreeMap<(String, String), bool>,
    outputs: BTreeMap<String, hcl::Block>,
    modules: BTreeSet<String>,
    errors: Vec<String>,
}

fn label(block: &hcl::Block, i: usize) -> String {
    block
        .labels()
        .get(i)
        .map(|l| l.as_str().to_owned())
        .unwrap_or_default()
}

fn declarations(files: &[File]) -> Declarations {
    let mut d = Declarations::default();
    for file in files {
        for block in file.model.blocks() {
            let counted = block
                .body()
                .attributes()
                .any(|a| a.key() == "count" || a.key() == "for_each");
            let what = format!(
                "{} {}",
                block.identifier(),
                block
                    .labels()
                    .iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join(".")
            );
            let fresh = match block.identifier() {
                "variable" => d.variables.insert(label(block, 0), block.clone()).is_none(),
                "output" => d.outputs.insert(label(block, 0), block.clone()).is_none(),
                "resource" => d
                    .resources
                    .insert((label(block, 0), label(block, 1)), counted)
                    .is_none(),
                "data" => d
                    .data
                    .insert((label(block, 0), label(block, 1)), counted)
                    .is_none(),
                "module" => d.modules.insert(label(block, 0)),
                "locals" => {
                    for attr in block.body().attributes() {
                        if d.locals
                            .insert(attr.key().to_owned(), attr.expr().clone())
                            .is_some()
                        {
                            d.errors
                                .push(format!("{}: local.{} is declared twice", file.name, attr.key()));
                        }
                    }
                    true
                }
                "terraform" | "provider" | "moved" | "import" | "check" | "removed" => true,
                other => {
                    d.errors
                        .push(format!("{}: unknown top-level block `{other}`", file.name));
                    true
                }
            };
            if !fresh {
                d.errors.push(format!("{}: {what} is declared twice", file.name));
            }
        }
    }
    d
}

/// Terraform's built-in functions (a typo in a function name is an error too).
const FUNCTIONS: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "log",
    "max",
    "min",
    "parseint",
    "pow",
    "signum",
    "chomp",
    "endswith",
    "format",
    "formatlist",
    "indent",
    "join",
    "lower",
    "regex",
    "regexall",
    "replace",
    "split",
    "startswith",
    "strcontains",
    "strrev",
    "substr",
    "templatestring",
    "title",
    "trim",
    "trimprefix",
    "trimsuffix",
    "trimspace",
    "upper",
    "alltrue",
    "anytrue",
    "chunklist",
    "coalesce",
    "coalescelist",
    "compact",
    "concat",
    "contains",
    "distinct",
    "element",
    "flatten",
    "index",
    "keys",
    "length",
    "lookup",
    "matchkeys",
    "merge",
    "one",
    "range",
    "reverse",
    "setintersection",
    "setproduct",
    "setsubtract",
    "setunion",
    "slice",
    "sort",
    "sum",
    "transpose",
    "values",
    "zipmap",
    "base64decode",
    "base64encode",
    "base64gzip",
    "csvdecode",
    "jsondecode",
    "jsonencode",
    "textdecodebase64",
    "textencodebase64",
    "urlencode",
    "yamldecode",
    "yamlencode",
    "abspath",
    "dirname",
    "pathexpand",
    "basename",
    "file",
    "fileexists",
    "fileset",
    "filebase64",
    "templatefile",
    "formatdate",
    "plantimestamp",
    "timeadd",
    "timecmp",
    "timestamp",
    "base64sha256",
    "base64sha512",
    "bcrypt",
    "filebase64sha256",
    "filebase64sha512",
    "filemd5",
    "filesha1",
    "filesha256",
    "filesha512",
    "md5",
    "rsadecrypt",
    "sha1",
    "sha256",
    "sha512",
    "uuid",
    "uuidv5",
    "cidrhost",
    "cidrnetmask",
    "cidrsubnet",
    "cidrsubnets",
    "can",
    "issensitive",
    "nonsensitive",
    "sensitive",
    "tobool",
    "tolist",
    "tomap",
    "tonumber",
    "toset",
    "tostring",
    "try",
    "type",
];

/// Walks every expression of the module and checks each reference.
struct Checker<'a> {
    decls: &'a Declarations,
    file: &'a File,
    /// The top-level block being walked (`resource.aws_vpc.main`).
    block: String,
    kind: String,
    has_count: bool,
    has_for_each: bool,
    in_depends_on: bool,
    /// Names bound by `for` expressions and `dynamic` blocks around here.
    bound: Vec<String>,
    errors: Vec<String>,
    used_variables: BTreeSet<String>,
    used_locals: BTreeSet<String>,
}

impl Checker<'_> {
    fn error(&mut self, span: Option<Range<usize>>, message: String) {
        let line = self.file.line(span);
        self.errors
            .push(format!("{}:{line}: in {}: {message}", self.file.name, self.block));
    }

    fn check(
        &mut self,
        root: &str,
        ops: &[hcl::edit::Decorated<TraversalOperator>],
        span: Option<Range<usize>>,
    ) {
        if self.bound.iter().any(|b| b == root) {
            return;
        }
        let attr = |i: usize| -> Option<&str> {
            ops.get(i).and_then(|op| match &**op {
                TraversalOperator::GetAttr(ident) => Some(ident.as_str()),
                _ => None,
            })
        };
        match root {
            "var" => match attr(0) {
                Some(name) if self.decls.variables.contains_key(name) => {
                    self.used_variables.insert(name.to_owned());
                }
                Some(name) => self.error(span, format!("var.{name} is not a declared variable")),
                None => self.error(span, "`var` without a variable name".into()),
            },
            "local" => match attr(0) {
                Some(name) if self.decls.locals.contains_key(name) => {
                    self.used_locals.insert(name.to_owned());
                }
                Some(name) => self.error(span, format!("local.{name} is not a declared local value")),
                None => self.error(span, "`local` without a name".into()),
            },
            "data" => match (attr(0), attr(1)) {
                (Some(kind), Some(name)) => match self.decls.data.get(&(kind.to_owned(), name.to_owned())) {
                    Some(&counted) => {
                        self.check_instance(&format!("data.{kind}.{name}"), counted, ops.get(2), span)
                    }
                    None => self.error(span, format!("data.{kind}.{name} is not a declared data source")),
                },
                _ => self.error(span, "`data` needs a type and a name".into()),
            },
            "module" => match attr(0) {
                Some(name) if self.decls.modules.contains(name) => {}
                _ => self.error(
                    span,
                    format!("module.{} is not a declared module", attr(0).unwrap_or("?")),
                ),
            },
            "count" => {
                if !self.has_count {
                    self.error(span, "count.index in a block without `count`".into());
                } else if attr(0) != Some("index") {
                    self.error(span, "`count` has only `count.index`".into());
                }
            }
            "each" => {
                if !self.has_for_each {
                    self.error(span, "each.* in a block without `for_each`".into());
                } else if !matches!(attr(0), Some("key" | "value")) {
                    self.error(span, "`each` has only `each.key` and `each.value`".into());
                }
            }
            "path" | "terraform" | "self" => {}
            kind => match attr(0) {
                Some(name) => match self.decls.resources.get(&(kind.to_owned(), name.to_owned())) {
                    Some(&counted) => {
                        self.check_instance(&format!("{kind}.{name}"), counted, ops.get(1), span)
                    }
                    None => self.error(span, format!("{kind}.{name} is not a declared resource")),
                },
                None => self.error(
                    span,
                    format!("`{kind}` is neither a resource type nor a bound name"),
                ),
            },
        }
    }

    /// A resource with `count`/`for_each` is a collection: it must be indexed
    /// (or splatted) before its attributes are read; one without cannot be indexed.
    fn check_instance(
        &mut self,
        what: &str,
        counted: bool,
        next: Option<&hcl::edit::Decorated<TraversalOperator>>,
        span: Option<Range<usize>>,
    ) {
        match next.map(|op| &**op) {
            Some(TraversalOperator::GetAttr(attr)) if counted && !self.in_depends_on => self.error(
                span,
                format!(
                    "{what} has count or for_each: index it before reading `{}` ({what}[0], {what}[*])",
                    attr.as_str()
                ),
            ),
            Some(TraversalOperator::Index(_) | TraversalOperator::LegacyIndex(_)) if !counted => self.error(
                span,
                format!("{what} has no count or for_each: it cannot be indexed"),
            ),
            _ => {}
        }
    }
}

impl Visit for Checker<'_> {
    fn visit_attr(&mut self, node: &Attribute) {
        let key = node.key.as_str();
        // Type constraints (`list(string)`) and lifecycle attribute names are not references.
        if (self.kind == "variable" && key == "type") || key == "ignore_changes" {
            return;
        }
        let depends_on = key == "depends_on";
        self.in_depends_on |= depends_on;
        visit::visit_attr(self, node);
        if depends_on {
            self.in_depends_on = false;
        }
    }

    fn visit_block(&mut self, node: &Block) {
        if node.ident.as_str() == "dynamic" {
            let iterator = match node.body.get_attribute("iterator").map(|a| &a.value) {
                Some(Expr::Variable(name)) => name.as_str().to_owned(),
                _ => node
                    .labels
                    .first()
                    .map(|l| l.as_str().to_owned())
                    .unwrap_or_default(),
            };
            self.bound.push(iterator);
            visit::visit_block(self, node);
            self.bound.pop();
        } else {
            visit::visit_block(self, node);
        }
    }

    fn visit_expr(&mut self, node: &Expr) {
        if let Expr::Variable(name) = node {
            // A bare name is only valid where a `for` or `dynamic` bound it.
            if !self.bound.iter().any(|b| b == name.as_str()) {
                let message = format!("`{}` is not bound here", name.as_str());
                self.error(name.span(), message);
            }
            return;
        }
        visit::visit_expr(self, node);
    }

    fn visit_traversal(&mut self, node: &Traversal) {
        match unary_root(&node.expr) {
            Some(root) => self.check(
                root.as_str(),
                &node.operators,
                node.span().or_else(|| root.span()),
            ),
            None => self.visit_expr(&node.expr),
        }
        for op in &node.operators {
            self.visit_traversal_operator(op);
        }
    }

    fn visit_for_expr(&mut self, node: &ForExpr) {
        let intro = &node.intro;
        let names: Vec<String> = intro
            .key_var
            .iter()
            .chain(std::iter::once(&intro.value_var))
            .map(|v| v.as_str().to_owned())
            .collect();
        let depth = self.bound.len();
        self.bound.extend(names);
        visit::visit_for_expr(self, node);
        self.bound.truncate(depth);
    }

    fn visit_func_call(&mut self, node: &FuncCall) {
        let name = node.name.name.as_str();
        if node.name.namespace.is_empty() && !FUNCTIONS.contains(&name) {
            let message = format!("`{name}` is not a Terraform function");
            self.error(node.span(), message);
        }
        visit::visit_func_call(self, node);
    }
}

/// The variable a traversal starts from. hcl-edit 0.8 parses `!var.x` as
/// `(!var).x` (a unary operator binding tighter than attribute access), so a
/// unary operator on the root is looked through: the reference is `var.x`.
fn unary_root(expr: &Expr) -> Option<&hcl::edit::Decorated<hcl::edit::Ident>> {
    match expr {
        Expr::Variable(root) => Some(root),
        Expr::UnaryOp(op) => unary_root(&op.expr),
        _ => None,
    }
}

/// Every reference error of the module, plus declared but unused variables and locals.
fn check_references(files: &[File]) -> Vec<String> {
    let decls = declarations(files);
    let mut errors = decls.errors.clone();
    let mut used_variables = BTreeSet::new();
    let mut used_locals = BTreeSet::new();
    for file in files {
        for block in file.syntax.blocks() {
            let labels: Vec<&str> = block.labels.iter().map(|l| l.as_str()).collect();
            let mut checker = Checker {
                decls: &decls,
                file,
                block: std::iter::once(block.ident.as_str())
                    .chain(labels)
                    .collect::<Vec<_>>()
                    .join("."),
                kind: block.ident.as_str().to_owned(),
                has_count: block.body.has_attribute("count"),
                has_for_each: block.body.has_attribute("for_each"),
                in_depends_on: false,
                bound: Vec::new(),
                errors: Vec::new(),
                used_variables: BTreeSet::new(),
                used_locals: BTreeSet::new(),
            };
            checker.visit_body(&block.body);
            errors.extend(checker.errors);
            used_variables.extend(checker.used_variables);
            used_locals.extend(checker.used_locals);
        }
    }
    for name in decls.variables.keys().filter(|n| !used_variables.contains(*n)) {
        errors.push(format!("variable {name} is declared but never used"));
    }
    for name in decls.locals.keys().filter(|n| !used_locals.contains(*n)) {
        errors.push(format!("local.{name} is declared but never used"));
    }
    errors
}

/// The field names of `Infrastructure`, read from its source: the outputs
/// `from_terraform_outputs` requires.
fn infrastructure_fields() -> Vec<String> {
    let source = include_str!("../src/infra.rs");
    let start = source
        .find("pub struct Infrastructure {")
        .expect("infra.rs defines Infrastructure");
    let mut fields = Vec::new();
    for line in source[start..].lines().skip(1) {
        let line = line.trim();
        if line == "}" {
            break;
        }
        assert!(
            !line.starts_with("#[serde"),
            "Infrastructure has serde attributes now: teach this test what they do to the field names"
        );
        if let Some(field) = line.strip_prefix("pub ").and_then(|rest| rest.split_once(':')) {
            fields.push(field.0.trim().to_owned());
        }
    }
    assert!(fields.len() > 10, "read too few fields from infra.rs: {fields:?}");
    fields
}

fn attribute<'a>(block: &'a hcl::Block, key: &str) -> Option<&'a hcl::Expression> {
    block
        .body()
        .attributes()
        .find(|a| a.key() == key)
        .map(|a| a.expr())
}

/// Whether an output's value is a list in `terraform output -json`.
fn is_list(expr: &hcl::Expression) -> bool {
    use hcl::expr::TraversalOperator as Op;
    match expr {
        hcl::Expression::Array(_) => true,
        hcl::Expression::ForExpr(f) => f.key_expr.is_none(),
        hcl::Expression::Traversal(t) => t
            .operators
            .iter()
            .any(|op| matches!(op, Op::AttrSplat | Op::FullSplat)),
        hcl::Expression::Parenthesis(inner) => is_list(inner),
        hcl::Expression::Conditional(c) => is_list(&c.true_expr) && is_list(&c.false_expr),
        hcl::Expression::FuncCall(f) => matches!(
            f.name.name.as_str(),
            "concat" | "tolist" | "slice" | "compact" | "distinct" | "flatten" | "sort" | "keys" | "values"
        ),
        _ => false,
    }
}

#[test]
fn every_file_parses() {
    let files = module();
    let names: BTreeSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
    for expected in [
        "versions.tf",
        "variables.tf",
        "network.tf",
        "security.tf",
        "alb.tf",
        "ecs.tf",
        "storage.tf",
        "iam.tf",
        "outputs.tf",
    ] {
        assert!(
            names.contains(expected),
            "deploy/terraform/{expected} is missing: {names:?}"
        );
    }
    for file in &files {
        assert!(
            file.model.blocks().next().is_some(),
            "{} declares nothing",
            file.name
        );
    }
}

#[test]
fn every_reference_points_at_a_declaration() {
    let files = module();
    let errors = check_references(&files);
    assert!(
        errors.is_empty(),
        "the Terraform module is inconsistent:\n{}",
        errors.join("\n")
    );

    // The walk really saw the module: spot-check a few declarations it resolved.
    let decls = declarations(&files);
    for resource in [
        ("aws_vpc", "main"),
        ("aws_lb", "main"),
        ("aws_ecs_service", "platform"),
        ("aws_s3_bucket", "artifacts"),
        ("aws_efs_file_system", "workspaces"),
    ] {
        assert!(
            decls
                .resources
                .contains_key(&(resource.0.into(), resource.1.into())),
            "{resource:?} is not declared"
        );
    }
}

#[test]
fn the_checker_catches_broken_modules() {
    let broken = File::parse(
        "broken.tf",
        r#"
variable "used" {
  description = "used"
  type        = list(string)
}

variable "unused" {
  description = "never referenced"
  type        = string
}

locals {
  ids   = [for s in aws_subnet.many : s.id]
  wrong = local.nope
}

resource "aws_subnet" "many" {
  count      = 2
  vpc_id     = aws_vpc.missing.id
  cidr_block = var.undeclared
  tags       = { Name = "${var.used[0]}-${count.index}" }
}

resource "aws_eip" "one" {
  domain     = upper(each.key)
  associate  = !var.used[1] && !var.missing_flag
  depends_on = [aws_subnet.many]
}

output "bad" {
  value = [aws_subnet.many.id, aws_eip.one[0].id, data.aws_region.nowhere.name, lenght(local.ids), stray]
}
"#,
    );
    let errors = check_references(std::slice::from_ref(&broken)).join("\n");
    for expected in [
        "local.nope is not a declared local value",
        "aws_vpc.missing is not a declared resource",
        "var.undeclared is not a declared variable",
        "aws_subnet.many has count or for_each",
        "aws_eip.one has no count or for_each",
        "each.* in a block without `for_each`",
        "data.aws_region.nowhere is not a declared data source",
        "`lenght` is not a Terraform function",
        "`stray` is not bound here",
        "var.missing_flag is not a declared variable",
        "variable unused is declared but never used",
        "local.wrong is declared but never used",
    ] {
        assert!(errors.contains(expected), "missed `{expected}` in:\n{errors}");
    }
    // Bound names, `count.index` under `count`, and `depends_on` on a
    // counted resource are fine.
    assert!(!errors.contains("`s`"), "{errors}");
    assert!(!errors.contains("count.index"), "{errors}");
    assert_eq!(errors.matches("aws_subnet.many has count").count(), 1, "{errors}");
    assert!(
        errors.contains("broken.tf:19: in resource.aws_subnet.many"),
        "{errors}"
    );
}

#[test]
fn variables_are_typed_documented_and_outputs_documented() {
    let decls = declarations(&module());
    assert!(decls.errors.is_empty(), "{:?}", decls.errors);
    for (name, block) in &decls.variables {
        assert!(attribute(block, "type").is_some(), "variable {name} has no type");
        assert!(
            attribute(block, "description").is_some(),
            "variable {name} has no description"
        );
    }
    for (name, block) in &decls.outputs {
        assert!(attribute(block, "value").is_some(), "output {name} has no value");
        assert!(
            attribute(block, "description").is_some(),
            "output {name} has no description"
        );
    }
    for required in ["platform_image", "apps_domain"] {
        let block = &decls.variables[required];
        assert!(attribute(block, "default").is_none(), "{required} must be given");
    }
}

#[test]
fn outputs_are_the_infrastructure_contract() {
    let decls = declarations(&module());
    let fields = infrastructure_fields();
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| !decls.outputs.contains_key(*f))
        .collect();
    assert!(
        missing.is_empty(),
        "outputs.tf lacks outputs that Infrastructure needs: {missing:?}"
    );

    // The platform's own task gets `jsonencode(local.infrastructure)` as its
    // aws-infrastructure.json: the same fields, with the same values as the outputs.
    let Some(hcl::Expression::Object(infrastructure)) = decls.locals.get("infrastructure") else {
        panic!("main.tf has no `local.infrastructure` object");
    };
    let local: BTreeMap<String, &hcl::Expression> = infrastructure
        .iter()
        .map(|(key, value)| {
            let key = match key {
                hcl::ObjectKey::Identifier(ident) => ident.to_string(),
                hcl::ObjectKey::Expression(hcl::Expression::String(s)) => s.clone(),
                other => panic!("unexpected key {other:?} in local.infrastructure"),
            };
            (key, value)
        })
        .collect();
    assert_eq!(
        local.keys().cloned().collect::<BTreeSet<_>>(),
        fields.iter().cloned().collect::<BTreeSet<_>>(),
        "local.infrastructure must have exactly Infrastructure's fields"
    );
    for field in &fields {
        let output = attribute(&decls.outputs[field], "value").unwrap();
        assert_eq!(
            output, local[field],
            "output {field} and local.infrastructure.{field} differ"
        );
    }
}

#[test]
fn terraform_outputs_adopt_as_infrastructure() {
    let decls = declarations(&module());
    // What `terraform output -json` prints for this module, with made-up values.
    let mut outputs = serde_json::Map::new();
    let mut expected = serde_json::Map::new();
    for (name, block) in &decls.outputs {
        let expr = attribute(block, "value").unwrap();
        let (kind, value) = if is_list(expr) {
            (
                json!(["tuple", ["string", "string"]]),
                json!([format!("{name}-0"), format!("{name}-1")]),
            )
        } else {
            (json!("string"), json!(format!("fake-{name}")))
        };
        outputs.insert(
            name.clone(),
            json!({"sensitive": false, "type": kind, "value": value.clone()}),
        );
        expected.insert(name.clone(), value);
    }
    let json = serde_json::to_vec_pretty(&Value::Object(outputs)).unwrap();
    let infra = Infrastructure::from_terraform_outputs(&json)
        .unwrap_or_else(|e| panic!("the module's outputs do not adopt: {e:?}"));

    let adopted = serde_json::to_value(&infra).unwrap();
    let adopted = adopted.as_object().unwrap();
    let fields: BTreeSet<String> = infrastructure_fields().into_iter().collect();
    assert_eq!(adopted.keys().cloned().collect::<BTreeSet<_>>(), fields);
    for (field, value) in adopted {
        assert_eq!(value, &expected[field], "{field} was not taken from its output");
    }
    assert_eq!(infra.public_subnet_ids.len(), 2);
    assert_eq!(infra.private_subnet_ids.len(), 2);
    assert_eq!(infra.mount_target_ids.len(), 2);

    // And one output short is refused, naming it.
    let mut short: serde_json::Map<String, Value> = serde_json::from_slice(&json).unwrap();
    short.remove("listener_arn");
    let error = Infrastructure::from_terraform_outputs(&serde_json::to_vec(&short).unwrap()).unwrap_err();
    assert!(format!("{error:?}").contains("listener_arn"), "{error:?}");
}

#[test]
fn readme_documents_variables_outputs_and_adoption() {
    let readme = std::fs::read_to_string(module_dir().join("README.md")).expect("deploy/terraform/README.md");
    let decls = declarations(&module());
    for name in decls.variables.keys().chain(decls.outputs.keys()) {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not mention `{name}`"
        );
    }
    for needle in [
        "terraform output -json > outputs.json",
        "easydeploy aws bootstrap --from-terraform outputs.json",
        "terraform apply",
    ] {
        assert!(readme.contains(needle), "README.md does not say `{needle}`");
    }
}
