<?php
// The cart as PHP sees it, for the Rust gateway walk in deploy/local/demo.sh.
// Reads the session with read_and_close (the lock is let go at once, nothing
// is written) and answers
//   {"pod": "pod-b", "user": "Ada", "cart": [{"sku": "tea", "qty": 2}], "session": "abc123…"}
// or 401 {"pod": "...", "error": "not logged in"}.
declare(strict_types=1);
require __DIR__ . '/_json.php';

$pod = json_begin();
if (!@session_start(['read_and_close' => true])) {
    json_fail($pod, 'session_start failed');
}
$user = $_SESSION['user'] ?? null;
if (!is_array($user)) {
    json_reply(['pod' => $pod, 'error' => 'not logged in'], 401);
}
$cart = $_SESSION['cart'] ?? [];
json_reply([
    'pod' => $pod,
    'user' => (string) ($user['name'] ?? ''),
    // A list even after unset() left holes in it, so it stays a JSON array.
    'cart' => array_values(is_array($cart) ? $cart : []),
    'session' => short_id(session_id()),
]);
