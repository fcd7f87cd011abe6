<?php
// No session: just says which pod answered. Plain text by default;
// ?format=json for {"pod": "..."}. Sends an X-Pod header like the
// bench/ endpoints. A baseline for benchmarks.
declare(strict_types=1);

$pod = getenv('POD_NAME') ?: 'unknown';
header('X-Pod: ' . $pod);
header('Cache-Control: no-store');
if (($_GET['format'] ?? '') === 'json') {
    header('Content-Type: application/json; charset=utf-8');
    echo json_encode(['pod' => $pod], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
    exit;
}
header('Content-Type: text/plain; charset=utf-8');
echo $pod, "\n";
