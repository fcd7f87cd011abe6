<?php
// Field scenario: a new session whose cookie reaches the browser before the
// request ends. The response (with its Set-Cookie) is finished with
// fastcgi_finish_request(), as a streamed response, flush() or a redirect
// after session_regenerate_id() would; the request then keeps the session
// ?ms=0..5000 [500] longer before it is written. The user's next request,
// with that cookie, must wait for this one and see its token: otherwise it
// gets a second, empty session and the two cookies overwrite each other.
// 200 {"pod": "pod-a", "csrf": "<16 hex>"}
declare(strict_types=1);
require __DIR__ . '/../bench/_common.php';

$ms = filter_var($_GET['ms'] ?? 500, FILTER_VALIDATE_INT, ['options' => ['min_range' => 0, 'max_range' => 5000]]);
$ms = $ms === false ? 500 : $ms;

$pod = bench_begin();
bench_session_start($pod);
$csrf = bin2hex(random_bytes(8));
$_SESSION['csrf'] = $csrf;
header('Content-Type: application/json; charset=utf-8');
echo json_encode(['pod' => $pod, 'csrf' => $csrf]), "\n";
fastcgi_finish_request();
usleep($ms * 1000);
session_write_close();
