//! End to end through the edge proxy of a real server, to an app deployed
//! by the platform: forwarding headers, a WebSocket upgrade, large bodies
//! streamed both ways with the proxy's memory bounded, 413 on a body
//! declared too large.
//!
//! The app is a FROM-scratch busybox image whose `nc -ll` runs a shell
//! script per connection: it echoes the request headers, streams
//! `/download/N` zero bytes, counts the bytes POSTed to `/count`, and
//! answers a WebSocket handshake (computing `Sec-WebSocket-Accept` with
//! `sha1sum`/`base64`) before echoing every byte back with `cat`.

mod support;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SCRIPT: &str = r#"cr=$(printf '\r')
read -r method path version
headers=""; key=""; length=0
while IFS= read -r line; do
  line=${line%$cr}
  [ -z "$line" ] && break
  headers="$headers$line
"
  name=$(echo "${line%%:*}" | /busybox tr A-Z a-z)
  value=${line#*: }
  case "$name" in
    sec-websocket-key) key=$value ;;
    content-length) length=$value ;;
  esac
done
if [ -n "$key" ]; then
  hex=$(printf '%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11' "$key" | /busybox sha1sum | /busybox cut -c1-40 | /busybox sed 's/../\\x&/g')
  accept=$(printf "$hex" | /busybox base64)
  printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n' "$accept"
  exec /busybox cat
fi
case "$path" in
  /download/*)
    n=${path#/download/}
    printf 'HTTP/1.1 200 OK\r\nContent-Length: %s\r\nConnection: close\r\n\r\n' "$n"
    exec /busybox head -c "$n" /dev/zero ;;
  /count) body=$(/busybox head -c "$length" | /busybox wc -c) ;;
  /crash) /busybox touch /crashed; body=crashing ;;
  *) body="$headers" ;;
esac
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' "${#body}" "$body"
"#;

/// Files of the app: busybox, the script, a Dockerfile running `nc -ll`.
fn script_app() -> Vec<(&'static str, Vec<u8>)> {
    let mut files = busybox_app_with(
        "unused",
        r#"CMD ["/busybox", "nc", "-ll", "-p", "8080", "-e", "/busybox", "sh", "/app.sh"]"#,
        "COPY app.sh /app.sh\n",
    );
    files.push(("app.sh", SCRIPT.as_bytes().to_vec()));
    files
}

/// The script app run by a shell that exits 1 once `/crash` was asked for,
/// so the engine restarts its container in place.
fn crashable_app() -> Vec<(&'static str, Vec<u8>)> {
    let mut files = busybox_app_with(
        "unused",
        r#"CMD ["/busybox", "sh", "-c", "/busybox nc -ll -p 8080 -e /busybox sh /app.sh & while [ ! -e /crashed ]; do /busybox sleep 0.2; done; /busybox rm /crashed; exit 1"]"#,
        "COPY app.sh /app.sh\n",
    );
    files.push(("app.sh", SCRIPT.as_bytes().to_vec()));
    files
}

/// Deploys `files` as the app `app`.
async fn deploy(server: &TestServer, app: &str, files: &[(&'static str, Vec<u8>)]) {
    let repo = git_repo(files);
    let out = server
        .cli(&["deploy", repo.path().to_str().unwrap(), "--name", app])
        .await;
    assert!(out.success, "{out:?}");
}

/// Peak resident memory of this process (`VmHWM`) in bytes: the server,
/// its edge proxy and this test's client.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// The container's address, and the client addresses of the TCP
/// connections (in any state, `TIME_WAIT` included) to its `port`, read
/// from its network namespace's `/proc/PID/net/tcp` and `tcp6` (IPv4
/// clients of a dual-stack listener appear there, mapped): the remote end
/// of the app's sockets, and the local end of client sockets that live in
/// the namespace too (whichever side closed first holds the `TIME_WAIT`).
fn peers_of(container: &str, port: u16) -> (Ipv4Addr, Vec<Ipv4Addr>) {
    let out = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.State.Pid}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        ])
        .arg(container)
        .output()
        .expect("docker CLI");
    let out = String::from_utf8(out.stdout).unwrap();
    let (pid, ip) = out.trim().split_once(' ').expect("pid and address");
    let mut table = String::new();
    for file in ["tcp", "tcp6"] {
        table += &std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap();
    }
    // `sl local rem st ...`, addresses as `0100007F:1F90`: the IP as 32-bit
    // words in host order (four of them for IPv6).
    let parse = |field: &str| {
        let (ip, port) = field.split_once(':').unwrap();
        let bytes: Vec<u8> = (0..ip.len() / 8)
            .flat_map(|i| {
                u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16)
                    .unwrap()
                    .to_le_bytes()
            })
            .collect();
        let ip = match <[u8; 16]>::try_from(bytes.as_slice()) {
            Ok(v6) => Ipv6Addr::from(v6).to_ipv4_mapped(),
            Err(_) => Some(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        };
        (ip, u16::from_str_radix(port, 16).unwrap())
    };
    let peers = table
        .lines()
        .filter(|line| !line.trim_start().starts_with("sl"))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let ((local, local_port), (remote, remote_port)) = (parse(fields[1]), parse(fields[2]));
            match fields[3] {
                "0A" => None, // listening
                _ if local_port == port => remote,
                _ if remote_port == port => local,
                _ => None,
            }
        })
        .collect();
    (ip.parse().unwrap(), peers)
}

/// Sends a raw request head; returns the connection and the response head.
async fn raw(server: &TestServer, head: &str) -> (TcpStream, String, Vec<u8>) {
    let mut stream = TcpStream::connect(server.proxy).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (head, rest) = read_head(&mut stream).await;
    (stream, head, rest)
}

async fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = got.split_off(end + 4);
            return (String::from_utf8_lossy(&got).into_owned(), rest);
        }
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

/// Reads until the peer closes; returns how many bytes came.
async fn drain(stream: &mut TcpStream, already: usize) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = already as u64;
    loop {
        match stream.read(&mut buf).await.unwrap() {
            0 => return total,
            n => total += n as u64,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployed_app_behind_the_edge_proxy() {
    let server = spawn_app().await;
    let app = unique("edge");
    deploy(&server, &app, &script_app()).await;
    let host = format!("{app}.localhost:{}", server.proxy.port());

    // Forwarding headers: what the proxy saw, not what the client claimed.
    let (mut conn, head, mut body) = raw(
        &server,
        &format!(
            "GET /headers HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: 6.6.6.6\r\n\
             Forwarded: for=6.6.6.6\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    conn.read_to_end(&mut body).await.unwrap();
    let echoed = String::from_utf8_lossy(&body).to_ascii_lowercase();
    for expected in [
        "x-forwarded-for: 127.0.0.1\n".to_owned(),
        "x-forwarded-proto: http\n".to_owned(),
        format!("x-forwarded-host: {host}\n"),
        format!("forwarded: for=127.0.0.1;host=\"{host}\";proto=http\n"),
    ] {
        assert!(echoed.contains(&expected), "{expected:?} missing from {echoed}");
    }
    assert!(!echoed.contains("6.6.6.6"), "{echoed}");
    assert!(!echoed.contains("connection:"), "hop-by-hop forwarded: {echoed}");
    // The proxy dialed the replica from inside its network namespace: the
    // app saw the connection come from its own address.
    let (own, peers) = peers_of(&server.containers(&app)[0], 8080);
    assert!(peers.contains(&own), "peers {peers:?}, replica {own}");

    // WebSocket upgrade: the 101 comes from the app, then bytes flow both ways.
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let (mut ws, head, rest) = raw(
        &server,
        &format!(
            "GET /chat HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "RFC 6455 accept: {head}"
    );
    assert!(rest.is_empty());
    // A masked text frame "hello"; the app echoes the bytes as they came.
    let frame = [
        0x81,
        0x85,
        1,
        2,
        3,
        4,
        b'h' ^ 1,
        b'e' ^ 2,
        b'l' ^ 3,
        b'l' ^ 4,
        b'o' ^ 1,
    ];
    for _ in 0..3 {
        ws.write_all(&frame).await.unwrap();
        let mut back = [0u8; 11];
        tokio::time::timeout(Duration::from_secs(10), ws.read_exact(&mut back))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(back, frame);
    }
    drop(ws);

    // Large bodies stream through without the proxy holding them.
    let before = peak_rss();
    let size: u64 = 256 << 20;
    let (mut down, head, rest) = raw(
        &server,
        &format!("GET /download/{size} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
    )
    .await;
    let length = format!("content-length: {size}\r\n");
    assert!(head.to_ascii_lowercase().contains(&length), "{head}");
    assert_eq!(drain(&mut down, rest.len()).await, size);

    let upload: u64 = 64 << 20;
    let mut up = TcpStream::connect(server.proxy).await.unwrap();
    let request = format!("POST /count HTTP/1.1\r\nHost: {host}\r\nContent-Length: {upload}\r\n\r\n");
    up.write_all(request.as_bytes()).await.unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(upload >> 20) {
        up.write_all(&zeros).await.unwrap();
    }
    let (head, mut body) = read_head(&mut up).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut buf = [0u8; 64];
    while let Ok(n @ 1..) = up.read(&mut buf).await {
        body.extend_from_slice(&buf[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&body).trim(), upload.to_string());
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 64 << 20, "peak memory grew by {} MiB", grown >> 20);

    // A body declared larger than the limit is refused before it is sent.
    let (_, head, _) = raw(
        &server,
        &format!(
            "POST /count HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            2u64 << 30
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    let out = server.cli(&["destroy", &app]).await;
    assert!(out.success, "{out:?}");
}

#[tokio::test]
async fn with_bridge_dialing_the_app_sees_the_bridge_gateway() {
    let server = spawn_app_with(|config| config.edge.edge_dial = "bridge".into()).await;
    let app = unique("bridge");
    deploy(&server, &app, &script_app()).await;
    // The app closes each connection; whichever side closes last, its
    // socket may be gone by the time it is listed: a few requests.
    let replica = server.containers(&app)[0].clone();
    let mut tries = 0;
    let (own, peers) = loop {
        let (status, _) = server.fetch(&app, "/headers").await;
        assert_eq!(status, 200);
        let (own, peers) = peers_of(&replica, 8080);
        tries += 1;
        if !peers.is_empty() || tries == 10 {
            break (own, peers);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        !peers.is_empty() && !peers.contains(&own),
        "peers {peers:?}, replica {own}"
    );
    let out = server.cli(&["destroy", &app]).await;
    assert!(out.success, "{out:?}");
}

#[tokio::test]
async fn a_replica_restarted_in_place_is_dialed_inside_its_new_namespace() {
    let server = spawn_app().await;
    let app = unique("restarted");
    deploy(&server, &app, &crashable_app()).await;
    let container = server.containers(&app)[0].clone();
    let sandbox = || {
        let out = std::process::Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{.State.Running}} {{.NetworkSettings.SandboxKey}}",
                &container,
            ])
            .output()
            .expect("docker CLI");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let before = sandbox();
    assert_eq!(server.fetch(&app, "/crash").await.0, 200);

    // Docker restarts it with a new network namespace: the edge first
    // reaches it across the bridge, then, routed again by the reconciler,
    // from inside the new namespace.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = sandbox();
        if now.starts_with("true") && now != before {
            let (status, _) = server.fetch(&app, "/headers").await;
            let (own, peers) = peers_of(&container, 8080);
            if status == 200 && peers.contains(&own) {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not served from inside the new namespace: {before} -> {now}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let out = server.cli(&["destroy", &app]).await;
    assert!(out.success, "{out:?}");
}

#[tokio::test]
async fn server_flags_set_the_edge_certificate_body_limit_and_header_timeout() {
    let app = unique("tls");
    let host = format!("{app}.localhost");
    let certified = rcgen::generate_simple_self_signed(vec![host.clone()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let server = spawn_app_with(|config| {
        config.edge.edge_tls_cert = Some(cert.clone());
        config.edge.edge_tls_key = Some(key.clone());
        config.edge.edge_max_body_mib = 1;
        config.edge.edge_header_timeout = 1;
    })
    .await;
    deploy(&server, &app, &script_app()).await;

    // TLS on the edge's listener, with the configured certificate.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap())
        .resolve(&host, server.proxy)
        .build()
        .unwrap();
    let url = format!("https://{host}:{}/headers", server.proxy.port());
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let echoed = response.text().await.unwrap().to_ascii_lowercase();
    assert!(echoed.contains("x-forwarded-proto: https\n"), "{echoed}");

    // Plain HTTP on the same listener, limited to 1 MiB bodies.
    let (_, head, _) = raw(
        &server,
        &format!(
            "POST /count HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
            2 << 20
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // A client that never finishes its headers is cut off after 1 s.
    let mut slow = TcpStream::connect(server.proxy).await.unwrap();
    slow.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\n").as_bytes())
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "still open after 5 s");
    let out = server.cli(&["destroy", &app]).await;
    assert!(out.success, "{out:?}");
}
