//! `easydeploy alerts APP`: show, set or turn off an app's alerts.

use crate::client::{urlencode, Client};
use serde_json::{json, Map, Value};

/// `easydeploy alerts` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct AlertsArgs {
    /// App name.
    pub app: String,
    /// http(s) URL receiving signed JSON notifications (turns alerts on).
    #[arg(long)]
    pub webhook: Option<String>,
    /// Fire when 5xx responses exceed this percentage (default 5)...
    #[arg(long, value_name = "PERCENT")]
    pub error_ratio: Option<f64>,
    /// ...over this many seconds (default 300).
    #[arg(long, value_name = "SECS")]
    pub window: Option<i64>,
    /// Fire when the p95 latency exceeds this many ms (default 1000).
    #[arg(long, value_name = "MS")]
    pub latency_p95: Option<i64>,
    /// Fire when a replica restarted this many times (default 3).
    #[arg(long, value_name = "N")]
    pub crash_loop: Option<i64>,
    /// Fire when the app has no healthy replica (default on).
    #[arg(long, value_name = "BOOL")]
    pub no_healthy_replica: Option<bool>,
    /// Generate a new signing secret (shown once).
    #[arg(long)]
    pub rotate_secret: bool,
    /// Turn the app's alerts off.
    #[arg(long, conflicts_with_all = ["webhook", "error_ratio", "window", "latency_p95", "crash_loop", "no_healthy_replica", "rotate_secret"])]
    pub off: bool,
}

/// Runs `easydeploy alerts`.
pub async fn run(client: &Client, args: AlertsArgs) -> anyhow::Result<()> {
    let path = format!("/apps/{}/alerts", urlencode(&args.app));
    if args.off {
        client.json(reqwest::Method::DELETE, &path, None).await?;
        println!("alerts of {} are off", args.app);
        return Ok(());
    }
    let mut body = Map::new();
    let mut put = |key: &str, value: Value| {
        body.insert(key.to_owned(), value);
    };
    if let Some(url) = &args.webhook {
        put("webhook_url", json!(url));
    }
    if let Some(p) = args.error_ratio {
        put("error_ratio_percent", json!(p));
    }
    if let Some(w) = args.window {
        put("window_secs", json!(w));
    }
    if let Some(ms) = args.latency_p95 {
        put("latency_p95_ms", json!(ms));
    }
    if let Some(n) = args.crash_loop {
        put("crash_loop_restarts", json!(n));
    }
    if let Some(on) = args.no_healthy_replica {
        put("no_healthy_replica", json!(on));
    }
    if args.rotate_secret {
        put("rotate_secret", json!(true));
    }
    let view = if body.is_empty() {
        client.get(&path).await?
    } else {
        client
            .json(reqwest::Method::PUT, &path, Some(Value::Object(body)))
            .await?
    };
    show(&args.app, &view);
    Ok(())
}

fn show(app: &str, v: &Value) {
    if v["enabled"].as_bool() != Some(true) {
        println!("alerts of {app} are off (turn them on with --webhook URL)");
    } else {
        println!("webhook   {}", v["webhook_url"].as_str().unwrap_or("-"));
        let secret = v["secret"].as_str().unwrap_or("");
        println!("secret    {secret}");
        if !secret.starts_with('*') {
            println!("          (shown once: verify X-Easydeploy-Signature-256 = sha256=HMAC-SHA256(secret, body))");
        }
    }
    let r = &v["rules"];
    let on = |b: &Value| if b.as_bool() == Some(false) { "off" } else { "on" };
    println!("rules");
    println!(
        "  crash_loop          a replica restarted {} times",
        r["crash_loop_restarts"]
    );
    println!(
        "  error_ratio         5xx above {}% over {} s",
        r["error_ratio_percent"], r["window_secs"]
    );
    println!("  latency_p95         above {} ms", r["latency_p95_ms"]);
    println!("  no_healthy_replica  {}", on(&r["no_healthy_replica"]));
    let states = v["states"].as_array().cloned().unwrap_or_default();
    if !states.is_empty() {
        println!("state");
        for s in states {
            let (what, since) = match s["firing_since"].as_str() {
                Some(since) => ("FIRING", since.to_owned()),
                None => ("resolved", s["resolved_at"].as_str().unwrap_or("-").to_owned()),
            };
            println!(
                "  {:<19} {what:<8} {since}  {}",
                s["rule"].as_str().unwrap_or("-"),
                s["message"].as_str().unwrap_or("")
            );
        }
    }
}

/// The firing alerts of an app, as `easydeploy status` shows them.
pub async fn print_firing(client: &Client, app: &str) -> anyhow::Result<()> {
    let v = client.get(&format!("/apps/{}/alerts", urlencode(app))).await?;
    for s in v["states"].as_array().cloned().unwrap_or_default() {
        if let Some(since) = s["firing_since"].as_str() {
            println!(
                "ALERT     {} firing since {since}: {}",
                s["rule"].as_str().unwrap_or("-"),
                s["message"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}
