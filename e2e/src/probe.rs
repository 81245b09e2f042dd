//! HTTP probes, asked from outside the pod as the kubelet does.

use std::time::Duration;

/// `GET url`: the status code and body, or `None` when nothing answered.
pub fn http_get(url: &str, timeout: Duration) -> Option<(u16, String)> {
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    let resp = match agent.get(url).call() {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(_) => return None,
    };
    let code = resp.status();
    Some((code, resp.into_string().unwrap_or_default()))
}

/// `PUT url` with a JSON body: the status code and body, or `None` when nothing answered.
pub fn http_put_json(url: &str, body: &str, timeout: Duration) -> Option<(u16, String)> {
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    let resp = match agent
        .put(url)
        .set("Content-Type", "application/json")
        .send_string(body)
    {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(_) => return None,
    };
    let code = resp.status();
    Some((code, resp.into_string().unwrap_or_default()))
}
