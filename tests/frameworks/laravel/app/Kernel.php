<?php
// The HTTP kernel: Laravel's own, with a `web` group of the session's
// middleware as a Laravel application's has them (cookies encrypted, the
// session started before the route and saved after it).
declare(strict_types=1);

namespace SticklessFw\Laravel;

use Illuminate\Cookie\Middleware\AddQueuedCookiesToResponse;
use Illuminate\Cookie\Middleware\EncryptCookies;
use Illuminate\Foundation\Http\Kernel as HttpKernel;
use Illuminate\Session\Middleware\StartSession;

final class Kernel extends HttpKernel
{
    protected $middlewareGroups = [
        'web' => [
            EncryptCookies::class,
            AddQueuedCookiesToResponse::class,
            StartSession::class,
        ],
    ];
}
