<?php
// Readiness probe used by deploy/local/stack.sh: reports the pod, its
// session.save_handler, and whether that handler can actually open and read a
// session. It uses read_and_close, so nothing is written and no cookie is kept.
// 200 {"pod": "...", "handler": "...", "module": "<version>", "session": "ok"}
// or 503 with an error; "module" is the version of the extension behind the
// handler (null for PHP's own "files"), so a benchmark can tell phpredis 5
// from 6.
declare(strict_types=1);
ini_set('html_errors', '0');

$pod = getenv('POD_NAME') ?: 'unknown';
$handler = (string) ini_get('session.save_handler');
$ok = @session_start(['read_and_close' => true, 'use_cookies' => false]);
$module = phpversion($handler);
$body = [
    'pod' => $pod,
    'handler' => $handler,
    'module' => $module === false ? null : $module,
    'session' => $ok ? 'ok' : 'failed',
];
if (!$ok) {
    // Session-start errors carry no session ID (none was sent to this page).
    $body['error'] = error_get_last()['message'] ?? 'unknown error';
    http_response_code(503);
}
header('X-Pod: ' . $pod);
header('Cache-Control: no-store');
header('Content-Type: application/json; charset=utf-8');
echo json_encode($body, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
