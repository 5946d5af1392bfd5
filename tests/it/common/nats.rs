//! A NATS cluster with JetStream on loopback ports, one `nats-server` process per node, each
//! with its own store directory. Killed on drop.

use super::{free_port, wait_port, which};
use std::process::{Child, Command, Stdio};

/// One NATS cluster at a time among the tests that share the machine: each is three servers
/// electing leaders beside two or three gateways, and the tests that bound a handover
/// (`cluster.rs`) missed it with two more such clusters on the same two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Taken after [`super::shared`], always in that order.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

pub struct NatsNode {
    pub name: String,
    pub port: u16,
    conf: std::path::PathBuf,
    child: Option<Child>,
}

pub struct NatsCluster {
    pub nodes: Vec<NatsNode>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// `n` nodes routed to each other, JetStream on, listening on 127.0.0.1 only.
    pub fn start(n: usize) -> NatsCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = (ports.iter())
            .map(|(_, r)| format!("nats-route://127.0.0.1:{r}"))
            .collect();
        let nodes = (ports.iter().enumerate())
            .map(|(i, (port, route))| {
                let name = format!("n{}", i + 1);
                let store = dir.path().join(&name);
                let conf = dir.path().join(format!("{name}.conf"));
                let text = format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\ncluster {{\n  name: sg\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                    store.display(),
                    routes.join(", ")
                );
                std::fs::write(&conf, text).unwrap();
                NatsNode { name, port: *port, conf, child: None }
            })
            .collect();
        let mut c = NatsCluster { nodes, _dir: dir };
        for i in 0..n {
            c.start_node(i);
        }
        c
    }

    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let child = Command::new(which("nats-server"))
            .arg("-c")
            .arg(&node.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        node.child = Some(child);
        wait_port(node.port, "nats-server");
    }

    /// SIGKILL one node: its Raft groups elect new leaders elsewhere.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The TOML array of every node's URL, for `cluster.nats_urls`.
    pub fn urls_toml(&self) -> String {
        let urls: Vec<String> = (self.nodes.iter())
            .map(|n| format!("\"nats://127.0.0.1:{}\"", n.port))
            .collect();
        format!("[{}]", urls.join(", "))
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }
}
