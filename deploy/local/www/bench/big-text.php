<?php
// Benchmark: a ~20 KB session of the kind applications keep (big.php's
// payload is random, so no codec can shrink it): a cart of products with
// names, prices and options, a browsing history and a user profile, as
// PHP's serializer writes them. Each request checks the cart it finds
// against its stored CRC32 ("ok": false = a corrupted or torn session),
// then rebuilds it for the new counter, so every write stores new data.
// Its counter is $_SESSION['text_n'], apart from the other endpoints'.
// 200 {"pod": "pod-a", "ok": true, "n": 3}; a fresh session is "ok": true, "n": 1.
declare(strict_types=1);
require __DIR__ . '/_common.php';

const WORDS = ['organic', 'green', 'tea', 'ceramic', 'mug', 'linen', 'apron', 'oak',
    'cutting', 'board', 'cast', 'iron', 'pan', 'espresso', 'beans', 'dark', 'roast',
    'wool', 'blanket', 'glass', 'teapot', 'bamboo', 'whisk', 'matcha', 'set'];

/** @return array{cart: list<array<string, mixed>>, history: list<string>, profile: array<string, mixed>} */
function session_data(int $n): array
{
    $cart = [];
    for ($i = 0; $i < 58; $i++) {
        $k = ($n * 7 + $i * 13) % 997;
        $name = WORDS[$k % 25] . ' ' . WORDS[($k >> 2) % 25] . ' ' . WORDS[($k >> 4) % 25];
        $cart[] = [
            'sku' => sprintf('SKU-%05d', $k * 31 % 100000),
            'name' => ucwords($name),
            'qty' => 1 + $k % 4,
            'unit_price' => round(3 + ($k % 120) * 0.75, 2),
            'currency' => 'EUR',
            'options' => ['colour' => WORDS[$k % 7], 'size' => ['S', 'M', 'L', 'XL'][$k % 4], 'gift_wrap' => $k % 5 === 0],
            'added_at' => 1764000000 + $n * 60 + $i,
            'url' => '/products/' . strtolower(str_replace(' ', '-', $name)) . '?ref=cart',
        ];
    }
    $history = [];
    for ($i = 0; $i < 60; $i++) {
        $history[] = '/category/' . WORDS[($n + $i) % 25] . '/page/' . (1 + ($n + $i) % 9);
    }
    return [
        'cart' => $cart,
        'history' => $history,
        'profile' => ['id' => 1000 + $n % 50, 'name' => 'Ada Lovelace', 'email' => 'ada@example.org',
            'locale' => 'en_GB', 'roles' => ['customer', 'newsletter'], 'last_login' => 1764000000 + $n],
    ];
}

$pod = bench_begin();
bench_session_start($pod);

$ok = true;
if (array_key_exists('text', $_SESSION) || array_key_exists('text_sum', $_SESSION)) {
    $text = $_SESSION['text'] ?? null;
    $ok = is_array($text) && ($_SESSION['text_sum'] ?? null) === crc32(serialize($text));
}

$n = (int) ($_SESSION['text_n'] ?? 0) + 1;
$text = session_data($n);
$_SESSION['text_n'] = $n;
$_SESSION['text'] = $text;
$_SESSION['text_sum'] = crc32(serialize($text));
bench_session_write($pod);
bench_reply(['pod' => $pod, 'ok' => $ok, 'n' => $n]);
