<?php
// Field scenario: the handler as an object, the way Symfony and Laravel
// wire it: a new Stickless\SessionHandler on every request, from the
// pod's $STICKLESS_URL (run the stack with POD_SESSION_INI=none, or a
// php_admin_value[session.save_handler] silently overrides the object).
// Objects with the same configuration share the worker's connections.
// 200 {"pod": "pod-a", "n": 3}
declare(strict_types=1);
require __DIR__ . '/../bench/_common.php';

$pod = bench_begin();
$url = getenv('STICKLESS_URL');
if (!is_string($url) || $url === '') {
    bench_reply(['pod' => $pod, 'error' => 'STICKLESS_URL is not set'], 503);
}
session_set_save_handler(new Stickless\SessionHandler($url), true);
bench_session_start($pod);
$n = (int) ($_SESSION['n'] ?? 0) + 1;
$_SESSION['n'] = $n;
bench_session_write($pod);
bench_reply(['pod' => $pod, 'n' => $n]);
