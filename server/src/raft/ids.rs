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
}
