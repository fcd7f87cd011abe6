<?php
// Laravel's log goes to PHP's error_log: the pod's php-error.log.
return [
    'default' => 'errorlog',
    'deprecations' => ['channel' => 'null', 'trace' => false],
    'channels' => [
        'errorlog' => ['driver' => 'errorlog', 'level' => 'debug'],
        'null' => ['driver' => 'monolog', 'handler' => Monolog\Handler\NullHandler::class],
    ],
];
