<?php
// Shared by login.php and cart.php (not an endpoint itself): JSON replies
// with the pod's name, and PHP errors with the session ID masked.
declare(strict_types=1);

if (realpath($_SERVER['SCRIPT_FILENAME'] ?? '') === __FILE__) {
    http_response_code(404);
    exit;
}

ini_set('display_errors', '0');
ini_set('html_errors', '0');

/** Starts the reply: the X-Pod header; returns the pod's name. */
function json_begin(): string
{
    $pod = getenv('POD_NAME') ?: 'unknown';
    header('X-Pod: ' . $pod);
    header('Cache-Control: no-store');
    header('Content-Type: application/json; charset=utf-8');
    return $pod;
}

/** @param array<string, mixed> $body */
function json_reply(array $body, int $code = 200): never
{
    http_response_code($code);
    echo json_encode($body, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
    exit;
}

/** The session ID is a credential: only its first 6 characters are ever shown. */
function short_id(string $id): string
{
    return $id === '' ? '' : substr($id, 0, 6) . '…';
}

/** 503 with the last PHP error, anything that looks like the session ID masked. */
function json_fail(string $pod, string $what): never
{
    $msg = error_get_last()['message'] ?? 'unknown error';
    foreach ([session_id(), $_COOKIE[session_name()] ?? ''] as $secret) {
        if (is_string($secret) && strlen($secret) >= 6) {
            $msg = str_replace($secret, short_id($secret), $msg);
        }
    }
    json_reply(['pod' => $pod, 'error' => "$what: $msg"], 503);
}
