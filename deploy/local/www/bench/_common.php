<?php
// Shared by the benchmark endpoints in this directory (not an endpoint itself).
//
// Every endpoint answers with an "X-Pod: <pod>" header, "Cache-Control:
// no-store" and a small JSON object; on a session failure it answers
// 503 {"pod": "...", "error": "..."} instead, so a load generator can count
// failures per handler. The session ID is never printed (error messages have
// it masked). PHP's warnings go to the pod's php-error.log, never the body.
declare(strict_types=1);

if (realpath($_SERVER['SCRIPT_FILENAME'] ?? '') === __FILE__) {
    http_response_code(404);
    exit;
}

ini_set('display_errors', '0');
ini_set('html_errors', '0');

/** Starts the reply: the X-Pod header; returns the pod's name. */
function bench_begin(): string
{
    $pod = getenv('POD_NAME') ?: 'unknown';
    header('X-Pod: ' . $pod);
    header('Cache-Control: no-store');
    return $pod;
}

/** @param array<string, mixed> $body */
function bench_reply(array $body, int $code = 200): never
{
    http_response_code($code);
    header('Content-Type: application/json; charset=utf-8');
    echo json_encode($body, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
    exit;
}

/** $msg with the session ID and the save path (it may hold credentials) masked. */
function bench_mask(string $msg): string
{
    $path = (string) ini_get('session.save_path');
    if ($path !== '') {
        $msg = str_replace($path, '<session.save_path>', $msg);
    }
    foreach ([session_id(), $_COOKIE[session_name()] ?? ''] as $secret) {
        if (is_string($secret) && strlen($secret) >= 6) {
            $msg = str_replace($secret, substr($secret, 0, 6) . '…', $msg);
        }
    }
    return $msg;
}

function bench_fail(string $pod, string $what): never
{
    $msg = error_get_last()['message'] ?? 'no PHP error';
    bench_reply(['pod' => $pod, 'error' => $what . ': ' . bench_mask($msg)], 503);
}

/**
 * session_start() with our own headers (no cache_limiter headers from PHP).
 * @param array<string, mixed> $options
 */
function bench_session_start(string $pod, array $options = []): void
{
    error_clear_last();
    if (!session_start(['cache_limiter' => ''] + $options)) {
        bench_fail($pod, 'session_start failed');
    }
}

/** session_write_close(), failing the request when the handler could not write. */
function bench_session_write(string $pod): void
{
    error_clear_last();
    // It returns true even when the handler's write failed; that only shows
    // as a warning.
    if (!session_write_close() || error_get_last() !== null) {
        bench_fail($pod, 'session write failed');
    }
}
