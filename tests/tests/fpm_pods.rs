//! Two php-fpm masters ("pods") behind nginx share sessions through
//! stickless: a session created on one pod is read and updated on the other.

use stickless_e2e::{Stack, http_get};

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn a_session_created_on_one_pod_is_read_and_updated_on_the_other() {
    let stack = Stack::up(2, &[]);
    let (status, head, body) = http_get(stack.port(), "/?format=json", None);
    assert_eq!(status, 200, "{head}\n{body}");
    let first = json(&body);
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("the first response sets the session cookie")
        .to_owned();
    assert_eq!(first["counter"], 1);

    let mut pods = vec![first["pod"].as_str().expect("pod name").to_owned()];
    for expected in 2..=6 {
        let (status, head, body) = http_get(stack.port(), "/?format=json", Some(&cookie));
        assert_eq!(status, 200, "{head}\n{body}");
        let reply = json(&body);
        assert_eq!(reply["counter"], expected, "served by {}", reply["pod"]);
        pods.push(reply["pod"].as_str().expect("pod name").to_owned());
    }
    // Round-robin: consecutive requests of the one user alternate pods.
    assert!(pods.windows(2).all(|w| w[0] != w[1]), "{pods:?}");
}
