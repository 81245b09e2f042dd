//! Member and cluster IDs, derived exactly as etcd derives them so that the
//! same flags give the same IDs on Ballast and on etcd.

use sha1::{Digest, Sha1};
use url::Url;

/// etcd: SHA-1 of the sorted peer URLs joined, then the cluster token; first 8 bytes.
pub fn member_id(peer_urls: &[Url], token: &str) -> u64 {
    let mut urls: Vec<String> = peer_urls.iter().map(url_string).collect();
    urls.sort();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(token.as_bytes());
    first_u64(&h.finalize())
}

/// A member added later also mixes in the time of the add, so re-adding the
/// same URLs gives a new ID (etcd's computeMemberId with a timestamp).
pub fn member_id_at(peer_urls: &[Url], token: &str, unix_secs: u64) -> u64 {
    let mut urls: Vec<String> = peer_urls.iter().map(url_string).collect();
    urls.sort();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(token.as_bytes());
    h.update(unix_secs.to_string().as_bytes());
    first_u64(&h.finalize())
}

/// etcd: SHA-1 of the sorted member IDs as big-endian u64s; first 8 bytes.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

fn first_u64(d: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// Go's `url.String()` for the URLs etcd accepts: no trailing slash.
pub fn url_string(u: &Url) -> String {
    u.as_str().trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_id_matches_etcd_default() {
        // `etcd` with default flags reports member 8e9e05c52164694d in
        // cluster cdf818194e3a8c32.
        let url = Url::parse("http://localhost:2380").expect("url");
        let id = member_id(&[url], "etcd-cluster");
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "cdf818194e3a8c32");
    }

    #[test]
    fn the_cluster_token_changes_the_ids_as_in_etcd() {
        // etcd 3.4.23: e1=http://127.0.0.1:23801 with token "ta" alone, and
        // with e4=http://127.0.0.1:23804 under token "tb".
        let e1 = Url::parse("http://127.0.0.1:23801").expect("url");
        let e4 = Url::parse("http://127.0.0.1:23804").expect("url");
        let a = member_id(std::slice::from_ref(&e1), "ta");
        assert_eq!(format!("{a:x}"), "5ff26abccae91cba");
        assert_eq!(format!("{:x}", cluster_id(&[a])), "908b88401a278a6d");
        let b1 = member_id(&[e1], "tb");
        let b4 = member_id(&[e4], "tb");
        assert_eq!(format!("{b1:x}"), "3eb8bdb957a7760d");
        assert_eq!(format!("{:x}", cluster_id(&[b1, b4])), "9595674782d3b587");
    }
}
