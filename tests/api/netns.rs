//! A private network of network namespaces, so a test can cut a server off from some peers and
//! not others. Every node gets a namespace of its own with two links, as servers often have:
//! one into the cluster network (the nodes' replication and the failover engine's store,
//! which runs on the host) and one into the client network (Trove's connections). Each
//! network is a bridge in a switch namespace of its own (the machine's firewall never sees
//! the bridged traffic); this process is on both through a veth pair each. Cutting a node
//! unplugs its cluster link from the bridge: what it sends there is lost, silently, as in a
//! partition, while its clients still reach it. Needs root; everything is removed on drop
//! (deleting a namespace deletes its links).

use std::process::Command;

use trove::local::formation::NodeHost;

pub struct Net {
    id: u32,
    /// The third octet of both networks: `10.213.N.0/24` (cluster), `10.214.N.0/24` (clients).
    octet: u32,
    nodes: usize,
}

impl Net {
    /// Whether this process may make namespaces (it is root).
    pub fn possible() -> bool {
        // SAFETY: geteuid(2) has no memory effects.
        unsafe { libc::geteuid() == 0 }
    }

    /// A network with `nodes` node namespaces, unique to this process.
    pub fn create(nodes: usize) -> Net {
        let id = std::process::id() % 10_000;
        let net = Net {
            id,
            octet: 20 + id % 200,
            nodes,
        };
        net.remove();
        let sw = net.switch();
        ip(&["netns", "add", &sw]);
        for (bridge, host, net_of) in [
            ("br0", format!("th{id}"), 213),
            ("br1", format!("tc{id}"), 214),
        ] {
            in_ns(&sw, &["ip", "link", "add", bridge, "type", "bridge"]);
            in_ns(&sw, &["ip", "link", "set", bridge, "up"]);
            let peer = format!("{host}p");
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer]);
            net.plug(&peer, bridge);
            let addr = format!("10.{net_of}.{}.1/24", net.octet);
            ip(&["addr", "add", &addr, "dev", &host]);
            ip(&["link", "set", &host, "up"]);
        }
        for i in 0..nodes {
            let ns = net.node_ns(i);
            ip(&["netns", "add", &ns]);
            in_ns(&ns, &["ip", "link", "set", "lo", "up"]);
            for (link, bridge, addr) in [
                ("eth0", "br0", net.node_addr(i)),
                ("eth1", "br1", net.client_addr(i)),
            ] {
                let (end, peer) = (format!("tn{id}x{i}{link}"), net.node_link(i, link));
                ip(&["link", "add", &end, "type", "veth", "peer", "name", &peer]);
                ip(&["link", "set", &end, "netns", &ns]);
                in_ns(&ns, &["ip", "link", "set", &end, "name", link]);
                in_ns(
                    &ns,
                    &["ip", "addr", "add", &format!("{addr}/24"), "dev", link],
                );
                in_ns(&ns, &["ip", "link", "set", link, "up"]);
                net.plug(&peer, bridge);
            }
        }
        net
    }

    /// Moves link `peer` into the switch and onto `bridge`.
    fn plug(&self, peer: &str, bridge: &str) {
        let sw = self.switch();
        ip(&["link", "set", peer, "netns", &sw]);
        in_ns(&sw, &["ip", "link", "set", peer, "master", bridge]);
        in_ns(&sw, &["ip", "link", "set", peer, "up"]);
    }

    /// The switch's end of node `i`'s `link` (kept short: link names have 15 bytes).
    fn node_link(&self, i: usize, link: &str) -> String {
        format!("tp{}x{i}{}", self.id, &link[3..])
    }

    fn switch(&self) -> String {
        format!("trove-sw-{}", self.id)
    }

    fn node_ns(&self, i: usize) -> String {
        format!("trove-n{i}-{}", self.id)
    }

    /// This process's address on the cluster network (the store listens there).
    pub fn host_addr(&self) -> String {
        format!("10.213.{}.1", self.octet)
    }

    /// Node `i`'s address on the cluster network.
    pub fn node_addr(&self, i: usize) -> String {
        format!("10.213.{}.{}", self.octet, 10 + i)
    }

    /// Node `i`'s address on the client network.
    pub fn client_addr(&self, i: usize) -> String {
        format!("10.214.{}.{}", self.octet, 10 + i)
    }

    /// Where each node runs, for `Formation::start_on`.
    pub fn node_hosts(&self) -> Vec<NodeHost> {
        (0..self.nodes)
            .map(|i| NodeHost {
                addr: self.node_addr(i),
                client_addr: self.client_addr(i),
                netns: Some(self.node_ns(i)),
            })
            .collect()
    }

    /// Cuts node `i` off the cluster network (from the other nodes and the store), leaving
    /// its clients' link.
    pub fn isolate(&self, i: usize) {
        let link = self.node_link(i, "eth0");
        in_ns(&self.switch(), &["ip", "link", "set", &link, "nomaster"]);
    }

    /// Undoes `isolate(i)`.
    pub fn heal(&self, i: usize) {
        let link = self.node_link(i, "eth0");
        in_ns(
            &self.switch(),
            &["ip", "link", "set", &link, "master", "br0"],
        );
    }

    fn remove(&self) {
        for i in 0..self.nodes {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.node_ns(i)])
                .output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.switch()])
            .output();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}

fn ip(args: &[&str]) {
    run("ip", args);
}

fn in_ns(ns: &str, args: &[&str]) {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    run("ip", &all);
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
