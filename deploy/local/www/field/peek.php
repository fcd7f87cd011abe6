<?php
// Field scenario: what the user's session holds now, read with the lock
// like any request (so it waits for a request that still holds it).
// 200 {"pod": "pod-b", "csrf": "<16 hex>" | null, "n": 0}
declare(strict_types=1);
require __DIR__ . '/../bench/_common.php';

$pod = bench_begin();
bench_session_start($pod);
$body = ['pod' => $pod, 'csrf' => $_SESSION['csrf'] ?? null, 'n' => (int) ($_SESSION['n'] ?? 0)];
bench_session_write($pod);
bench_reply($body);
