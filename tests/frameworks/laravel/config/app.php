<?php
// Only what this test application uses: no framework defaults are merged
// (Laravel 11+ would look for them where Debian does not put them).
return [
    'name' => 'stickless-frameworks-test',
    'env' => 'production',
    // Errors render through Symfony's error page (no view layer here).
    'debug' => true,
    'url' => 'http://127.0.0.1',
    'timezone' => 'UTC',
    'locale' => 'en',
    // EncryptCookies: a fixed key of this test application only.
    'key' => 'base64:' . base64_encode('stickless-frameworks-test-key-32'),
    'cipher' => 'AES-256-CBC',
    'previous_keys' => [],
    'maintenance' => ['driver' => 'file'],
    'providers' => [
        Illuminate\Cookie\CookieServiceProvider::class,
        Illuminate\Encryption\EncryptionServiceProvider::class,
        Illuminate\Filesystem\FilesystemServiceProvider::class,
        Illuminate\Session\SessionServiceProvider::class,
        SticklessFw\Laravel\AppServiceProvider::class,
    ],
    'aliases' => [],
];
