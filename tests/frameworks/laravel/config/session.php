<?php
// The stickless driver is registered by AppServiceProvider (Session::extend).
// $FW_SERIALIZATION picks Laravel's session.serialization: php | json.
return [
    'driver' => 'stickless',
    'lifetime' => 120,
    'expire_on_close' => false,
    'encrypt' => false,
    'connection' => null,
    'table' => 'sessions',
    'store' => null,
    'lottery' => [2, 100],
    'cookie' => 'laravel_session',
    'path' => '/',
    'domain' => null,
    'secure' => false,
    'http_only' => true,
    'same_site' => 'lax',
    'partitioned' => false,
    'serialization' => getenv('FW_SERIALIZATION') ?: 'php',
];
