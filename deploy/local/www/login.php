<?php
// Demo login, for the Rust gateway walk in deploy/local/demo.sh: POST logs a
// fixed user in, under a new session ID (against session fixation), with
//   $_SESSION['user'] = ['id' => 42, 'name' => 'Ada']; $_SESSION['cart'] = [];
// the entries examples/axum-gateway reads and adds to. Answers
//   {"pod": "pod-a", "user": {"id": 42, "name": "Ada"}, "session": "abc123…"}
declare(strict_types=1);
require __DIR__ . '/_json.php';

$pod = json_begin();
// Logging in changes state: not on a GET that a crawler or a prefetch sends.
if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
    header('Allow: POST');
    json_reply(['pod' => $pod, 'error' => 'use POST'], 405);
}

error_clear_last();
if (!@session_start()) {
    json_fail($pod, 'session_start failed');
}
if (!@session_regenerate_id(true)) {
    json_fail($pod, 'session_regenerate_id failed');
}
$user = ['id' => 42, 'name' => 'Ada'];
$_SESSION['user'] = $user;
$_SESSION['cart'] = [];
$session = short_id(session_id());
// session_write_close() is true even when the handler's write failed; that
// only shows as a warning.
if (!@session_write_close() || error_get_last() !== null) {
    json_fail($pod, 'session write failed');
}
json_reply(['pod' => $pod, 'user' => $user, 'session' => $session]);
