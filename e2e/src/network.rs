//! Hosts on a private bridge: one network namespace each, addresses in one /24, and
//! `/etc/hosts` files standing in for cluster DNS.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use crate::command::run;
use crate::Error;

/// A bridge and the hosts on it; everything is removed on drop.
#[derive(Debug)]
pub struct Network {
    tag: String,
    subnet: [u8; 3],
    hosts: Vec<Host>,
}

/// One machine of the network: a network namespace with one address.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
}

impl Network {
    /// A new bridge `<tag>-br` with `subnet.1/24` on it. `tag` (at most 6 characters) keeps
    /// the interface and namespace names of concurrent tests apart; leftovers of an earlier
    /// run with the same tag are removed first.
    pub fn create(tag: &str, subnet: [u8; 3]) -> Result<Network, Error> {
        if tag.is_empty() || tag.len() > 6 || !tag.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::Spec(format!(
                "network tag {tag:?}: 1-6 letters or digits"
            )));
        }
        let net = Network {
            tag: tag.to_string(),
            subnet,
            hosts: Vec::new(),
        };
        net.remove_leftovers();
        let bridge = net.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", net.address(1)),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        Ok(net)
    }

    /// Adds a host with the next free address.
    pub fn add_host(&mut self, name: &str) -> Result<Host, Error> {
        let n = self.hosts.len();
        if n > 200 {
            return Err(Error::Spec("too many hosts".into()));
        }
        let host = Host {
            name: name.to_string(),
            netns: format!("{}-{name}", self.tag),
            ip: self.address(10 + n as u8),
        };
        let outside = format!("{}{n}h", self.tag);
        let inside = format!("{}{n}p", self.tag);
        run("ip", &["netns", "add", &host.netns])?;
        // Registered before the rest, so a failure below is still cleaned up.
        self.hosts.push(host.clone());
        run(
            "ip",
            &[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ],
        )?;
        run("ip", &["link", "set", &outside, "master", &self.bridge()])?;
        run("ip", &["link", "set", &outside, "up"])?;
        run("ip", &["link", "set", &inside, "netns", &host.netns])?;
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", host.netns.as_str(), "ip"];
            all.extend_from_slice(args);
            run("ip", &all)
        };
        in_ns(&["link", "set", &inside, "name", "eth0"])?;
        in_ns(&["addr", "add", &format!("{}/24", host.ip), "dev", "eth0"])?;
        in_ns(&["link", "set", "eth0", "up"])?;
        in_ns(&["link", "set", "lo", "up"])?;
        Ok(host)
    }

    /// Writes every host's `/etc/hosts`: localhost, the host's own name, and `names`.
    pub fn write_hosts(&self, names: &[(Ipv4Addr, Vec<String>)]) -> Result<(), Error> {
        for host in &self.hosts {
            let mut text = format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{}\n",
                host.ip, host.name
            );
            for (ip, aliases) in names {
                text.push_str(&format!("{ip}\t{}\n", aliases.join(" ")));
            }
            let dir = netns_etc(&host.netns);
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            let path = dir.join("hosts");
            std::fs::write(&path, text)
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        }
        Ok(())
    }

    /// Cuts a host off the bridge (`false`) or plugs it back (`true`).
    pub fn set_link(&self, host: &Host, up: bool) -> Result<(), Error> {
        let n = self
            .hosts
            .iter()
            .position(|h| h.netns == host.netns)
            .ok_or_else(|| Error::Spec(format!("{} is not on this network", host.name)))?;
        let state = if up { "up" } else { "down" };
        run("ip", &["link", "set", &format!("{}{n}h", self.tag), state])?;
        Ok(())
    }

    fn bridge(&self) -> String {
        format!("{}-br", self.tag)
    }

    fn address(&self, last: u8) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, last)
    }

    fn remove_leftovers(&self) {
        let prefix = format!("{}-", self.tag);
        if let Ok(list) = run("ip", &["netns", "list"]) {
            for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
                if ns.starts_with(&prefix) {
                    let _ = run("ip", &["netns", "del", ns]);
                    let _ = std::fs::remove_dir_all(netns_etc(ns));
                }
            }
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}

impl Host {
    /// `program` run inside this host's namespace (with its `/etc/hosts`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns, program]);
        c
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and with it the other end.
        for host in &self.hosts {
            let _ = run("ip", &["netns", "del", &host.netns]);
            let _ = std::fs::remove_dir_all(netns_etc(&host.netns));
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}

fn netns_etc(netns: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(netns)
}
