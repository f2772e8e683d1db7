//! A real ACME CA for the HTTPS tests: Debian's `pebble`, validating for real against the edge
//! (HTTP-01 on the edge's HTTP port, TLS-ALPN-01 on its HTTPS port), with every name resolved
//! to 127.0.0.1 by `pebble-challtestsrv`.
//!
//! Caddy runs in a container, so it reaches pebble at the host's address on Docker's gateway
//! bridge; pebble's own listener certificate (Debian ships none) is made here with `openssl`,
//! for that address, by a CA of the test's own that Caddy is told to trust.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use orchestrator::edge::AcmeConfig;

/// A free port on loopback.
pub fn free_address() -> SocketAddr {
    // A port is free once its listener is dropped, so the kernel may give it again to the next
    // ask: the ports handed out in this process are remembered and never handed out twice
    // (pebble's, its DNS server's and the edge's once came out the same).
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        if !given.contains(&address.port()) {
            given.push(address.port());
            return address;
        }
    }
}

/// pebble and its DNS server; both stopped when dropped.
pub struct Acme {
    dir: tempfile::TempDir,
    pebble: Child,
    dns: Child,
    /// The ACME directory, as Caddy reaches it.
    pub directory: String,
    management: u16,
    dns_port: u16,
    /// How many times pebble was started (each start has a root of its own).
    starts: u32,
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .expect("openssl (Debian package openssl) is installed");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The host's address on the bridge that containers on Swarm overlay networks leave by.
fn gateway_address() -> String {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "docker_gwbridge"])
        .output()
        .expect("ip (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .unwrap_or_else(|| panic!("docker_gwbridge has no IPv4 address: {text:?}"))
        .to_owned()
}

impl Acme {
    /// pebble validating challenges at `http_port` and `tls_port` on 127.0.0.1.
    pub async fn start(http_port: u16, tls_port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let gateway = gateway_address();
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-days", "2", "-subj", "/CN=Director test listener CA", "-keyout"])
            .args([path("ca.key"), PathBuf::from("-out"), path("ca.pem")]));
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .args([path("listener.key"), PathBuf::from("-out"), path("listener.csr")]));
        std::fs::write(
            path("ext"),
            format!("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:{gateway}\nextendedKeyUsage=serverAuth\n"),
        )
        .unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(path("listener.csr"))
            .arg("-CA")
            .arg(path("ca.pem"))
            .arg("-CAkey")
            .arg(path("ca.key"))
            .args(["-CAcreateserial", "-out"])
            .arg(path("listener.pem"))
            .arg("-extfile")
            .arg(path("ext")));
        let (listen, management, dns_port) = (
            free_address().port(),
            free_address().port(),
            free_address().port(),
        );
        std::fs::write(
            path("pebble.json"),
            serde_json::json!({"pebble": {
                "listenAddress": format!("0.0.0.0:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": path("listener.pem"),
                "privateKey": path("listener.key"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }})
            .to_string(),
        )
        .unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{}", free_address().port())])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian package pebble) is installed");
        let acme = Self {
            pebble: spawn_pebble(dir.path(), dns_port),
            dir,
            dns,
            directory: format!("https://{gateway}:{listen}/dir"),
            management,
            dns_port,
            starts: 1,
        };
        acme.wait_until_up().await;
        acme
    }

    /// The edge's ACME settings with this CA.
    pub fn config(&self, https: SocketAddr) -> AcmeConfig {
        AcmeConfig {
            listen: https,
            ca: self.directory.clone(),
            email: Some("tests@director.test".to_owned()),
            ca_root: Some(self.dir.path().join("ca.pem")),
        }
    }

    /// The root pebble issues under (new at every start of pebble), as a PEM file for curl
    /// (one file per start: certificates from an earlier start stay checkable).
    pub fn issuing_root(&self) -> PathBuf {
        let file = self.dir.path().join(format!("issuing-root-{}.pem", self.starts));
        let out = Command::new("curl")
            .args(["-sSfk", "-o"])
            .arg(&file)
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
            .output()
            .expect("curl (Debian package curl) is installed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        file
    }

    /// Stops pebble: the CA is gone (connections refused).
    pub fn stop(&mut self) {
        let _ = self.pebble.kill();
        let _ = self.pebble.wait();
    }

    /// Starts pebble again on the same address. Like any CA restarted without its database,
    /// it knows none of the accounts it had, and issues under a new root.
    pub async fn start_again(&mut self) {
        self.pebble = spawn_pebble(self.dir.path(), self.dns_port);
        self.starts += 1;
        self.wait_until_up().await;
    }

    async fn wait_until_up(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.management))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pebble did not start");
    }
}

fn spawn_pebble(dir: &Path, dns_port: u16) -> Child {
    Command::new("pebble")
        .arg("-config")
        .arg(dir.join("pebble.json"))
        .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
        // No artificial validation delays, and no nonces refused at random (pebble's way of
        // testing clients' retries; Caddy's are not what these tests are about).
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pebble (Debian package pebble) is installed")
}

impl Drop for Acme {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
