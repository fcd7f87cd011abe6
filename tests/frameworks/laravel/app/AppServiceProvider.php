<?php
// The test application's provider: the `stickless` session driver, wired as
// docs/RUST.md tells Laravel users to (Session::extend returning a
// Stickless\SessionHandler on the pods' $STICKLESS_URL), and the routes, all
// GET, in the `web` middleware group (EncryptCookies, AddQueuedCookiesToResponse,
// StartSession; see Kernel.php). Every page answers JSON (see state()):
//   /visit          an anonymous page that uses the session
//   /login?user=N   stores the user's ID, then $request->session()->regenerate()
//                   (what Laravel's docs do after Auth::attempt())
//   /whoami         shows the session
//   /rotate         $request->session()->regenerate(true): a new ID, the old
//                   session destroyed
//   /flash          flashes two messages ("notice"), shown by the next page
//   /count?hold_ms= increments "counter" (shown as "n"), then holds the session
//                   hold_ms (<= 1000) longer
//   /logout         $request->session()->invalidate() and regenerateToken()
declare(strict_types=1);

namespace SticklessFw\Laravel;

use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Route;
use Illuminate\Support\Facades\Session;
use Illuminate\Support\ServiceProvider;

final class AppServiceProvider extends ServiceProvider
{
    public function boot(): void
    {
        // The handler gives stored sessions PHP's session.gc_maxlifetime; make it Laravel's lifetime.
        ini_set('session.gc_maxlifetime', (string) ((int) config('session.lifetime') * 60));
        Session::extend('stickless', fn () => new \Stickless\SessionHandler((string) getenv('STICKLESS_URL')));

        Route::middleware('web')->group(function (): void {
            Route::get('/visit', function (Request $request): JsonResponse {
                $session = $request->session();
                $session->put('visits', (int) $session->get('visits', 0) + 1);
                return self::state($request);
            });
            Route::get('/login', function (Request $request): JsonResponse {
                $request->session()->put('user_id', (int) $request->query('user'));
                $request->session()->regenerate();
                return self::state($request);
            });
            Route::get('/whoami', fn (Request $request): JsonResponse => self::state($request));
            Route::get('/rotate', function (Request $request): JsonResponse {
                $request->session()->regenerate(true);
                return self::state($request);
            });
            Route::get('/flash', function (Request $request): JsonResponse {
                $request->session()->flash('notice', ['Saved.', 'Welcome back!']);
                return self::state($request, false);
            });
            Route::get('/count', function (Request $request): JsonResponse {
                $session = $request->session();
                $session->put('counter', (int) $session->get('counter', 0) + 1);
                $hold = min(1000, max(0, (int) $request->query('hold_ms', '0')));
                if ($hold > 0) {
                    usleep($hold * 1000);
                }
                return self::state($request);
            });
            Route::get('/logout', function (Request $request): JsonResponse {
                $request->session()->invalidate();
                $request->session()->regenerateToken();
                return self::state($request);
            });
        });
    }

    private static function state(Request $request, bool $showFlashes = true): JsonResponse
    {
        $session = $request->session();
        $pod = getenv('POD_NAME') ?: 'unknown';
        return new JsonResponse([
            'user' => $session->get('user_id'),
            'n' => $session->get('counter'),
            'visits' => $session->get('visits'),
            // A page shows what the previous request flashed; Laravel forgets it
            // when this request saves.
            'notice' => $showFlashes ? $session->get('notice', []) : null,
            'sid' => $session->getId(),
            'framework' => 'laravel ' . app()->version(),
            'serialization' => config('session.serialization'),
            'pod' => $pod,
            'handler' => get_class($session->getHandler()),
            'upload_progress' => ini_get('session.upload_progress.enabled'),
        ], 200, ['X-Pod' => $pod]);
    }
}
