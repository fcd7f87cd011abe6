<?php
// No session: just says which pod answered. Plain text by default;
// ?format=json for {"pod": "..."}. A baseline for benchmarks.
declare(strict_types=1);

$pod = getenv('POD_NAME') ?: 'unknown';
header('Cache-Control: no-store');
if (($_GET['format'] ?? '') === 'json') {
    header('Content-Type: application/json; charset=utf-8');
    echo json_encode(['pod' => $pod], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
    exit;
}
header('Content-Type: text/plain; charset=utf-8');
echo $pod, "\n";
