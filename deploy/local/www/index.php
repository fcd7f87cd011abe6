<?php
// stickless demo page: one shared session, whichever pod serves the request.
// Starts the session, bumps $_SESSION['counter'] and shows which pod answered.
// ?format=json (or "Accept: application/json") returns
//   {"pod": "pod-a", "counter": 3, "session": "abc123…"}
// The session ID is a credential: only its first 6 characters are ever shown.
declare(strict_types=1);
ini_set('html_errors', '0');

$pod = getenv('POD_NAME') ?: 'unknown';
$format = $_GET['format'] ?? '';
$json = $format === 'json'
    || ($format === '' && str_contains($_SERVER['HTTP_ACCEPT'] ?? '', 'application/json'));

function short_id(string $id): string
{
    return $id === '' ? '' : substr($id, 0, 6) . '…';
}

/** The last PHP error, with anything that looks like the session ID masked. */
function redacted_error(): string
{
    $msg = error_get_last()['message'] ?? 'unknown error';
    foreach ([session_id(), $_COOKIE[session_name()] ?? ''] as $secret) {
        if (is_string($secret) && strlen($secret) >= 6) {
            $msg = str_replace($secret, short_id($secret), $msg);
        }
    }
    return $msg;
}

function fail(string $pod, bool $json, string $what): never
{
    http_response_code(500);
    header('Cache-Control: no-store');
    $error = $what . ': ' . redacted_error();
    if ($json) {
        header('Content-Type: application/json; charset=utf-8');
        echo json_encode(['pod' => $pod, 'error' => $error], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
    } else {
        header('Content-Type: text/plain; charset=utf-8');
        echo "$pod: $error\n";
    }
    exit;
}

if (!@session_start()) {
    fail($pod, $json, 'session_start failed');
}
$counter = (int) ($_SESSION['counter'] ?? 0) + 1;
$_SESSION['counter'] = $counter;
$session = short_id(session_id());
if (!@session_write_close()) {
    fail($pod, $json, 'session write failed');
}

header('Cache-Control: no-store');
if ($json) {
    header('Content-Type: application/json; charset=utf-8');
    echo json_encode(
        ['pod' => $pod, 'counter' => $counter, 'session' => $session],
        JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES
    ), "\n";
    exit;
}

$h = static fn (string $s): string => htmlspecialchars($s, ENT_QUOTES | ENT_HTML5, 'UTF-8');
header('Content-Type: text/html; charset=utf-8');
?>
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>stickless demo — <?= $h($pod) ?></title>
<style>
  body { font-family: system-ui, sans-serif; margin: 3rem auto; max-width: 32rem; color: #222; }
  .card { border: 1px solid #ccc; border-radius: 8px; padding: 1.5rem 2rem; }
  .pod { font-size: 2rem; font-weight: bold; }
  .counter { font-size: 3rem; }
  dt { color: #666; margin-top: .75rem; }
  dd { margin: 0; }
  code { background: #f4f4f4; padding: 0 .25rem; }
</style>
</head>
<body>
<div class="card">
  <h1>stickless demo</h1>
  <dl>
    <dt>served by</dt>
    <dd class="pod"><?= $h($pod) ?></dd>
    <dt>your counter</dt>
    <dd class="counter"><?= $counter ?></dd>
    <dt>session</dt>
    <dd><code><?= $h($session) ?></code> via <code><?= $h((string) ini_get('session.save_handler')) ?></code></dd>
  </dl>
  <p>Reload: nginx sends each request to the next pod, and the counter keeps counting
  because the session lives in Redis, not in the pod.</p>
  <p><a href="?">reload</a> · <a href="?format=json">JSON</a></p>
</div>
</body>
</html>
