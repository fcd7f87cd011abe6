<?php
// A minimal Symfony application (MicroKernelTrait, FrameworkBundle) whose
// session is configured the two ways FrameworkBundle offers, chosen by
// $FW_SESSION:
//
//   native   framework.session.handler_id: null. PHP's own save handler,
//            session.save_handler=stickless from the pool's ini. Symfony wraps
//            it as StrictSessionHandler(new \SessionHandler()) and registers
//            that with session_set_save_handler(): set with php_value, as
//            php.ini would (POD_SESSION_INI=value), PHP then reaches stickless
//            through Symfony's wrapper; set with php_admin_value (the stack's
//            default) PHP ignores the registration, and calls stickless itself.
//   object   framework.session.handler_id: a service of class
//            Stickless\SessionHandler, built from $STICKLESS_URL (the pods'
//            save path); the pool leaves session.save_handler to php.ini
//            (POD_SESSION_INI=none). Symfony wraps it in SessionHandlerProxy.
//
// Every page answers JSON (see state()). The routes, each a GET:
//   /visit          an anonymous page that uses the session
//   /login?user=N   stores the user's ID, then $session->migrate(true)
//   /whoami?hold_ms= shows the session, then holds it hold_ms (<= 1000) longer
//   /rotate         $session->migrate(true) alone
//   /flash          adds two flash messages ("notice"), shown by the next page
//   /count?hold_ms= increments "counter" (shown as "n"), then holds the session
//                   hold_ms (<= 1000) longer
//   /logout         $session->invalidate()
// $FW_METADATA_UPDATE_THRESHOLD, when set, is framework.session's
// metadata_update_threshold: how many seconds pass before Symfony stamps the
// session's last use (`_sf2_meta`) again; 0, its default, stamps every request.
// Every page but /flash displays (and so consumes) the flash messages.
declare(strict_types=1);

namespace SticklessFw\Symfony;

use Symfony\Bundle\FrameworkBundle\FrameworkBundle;
use Symfony\Bundle\FrameworkBundle\Kernel\MicroKernelTrait;
use Symfony\Component\DependencyInjection\Loader\Configurator\ContainerConfigurator;
use Symfony\Component\HttpFoundation\JsonResponse;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Session\SessionInterface;
use Symfony\Component\HttpKernel\Kernel as BaseKernel;
use Symfony\Component\Routing\Loader\Configurator\RoutingConfigurator;

final class Kernel extends BaseKernel
{
    use MicroKernelTrait;

    /** The two session set-ups (see the header). */
    public const SETUPS = ['native', 'object'];

    public function __construct(private readonly string $setup, private readonly string $varDir)
    {
        if (!in_array($setup, self::SETUPS, true)) {
            throw new \InvalidArgumentException("FW_SESSION must be native or object, not '$setup'");
        }
        // The environment names the container, so each set-up has its own.
        parent::__construct($setup, false);
    }

    public function registerBundles(): iterable
    {
        yield new FrameworkBundle();
    }

    public function getProjectDir(): string
    {
        return \dirname(__DIR__);
    }

    public function getCacheDir(): string
    {
        return $this->varDir . '/cache/' . $this->environment;
    }

    public function getBuildDir(): string
    {
        return $this->getCacheDir();
    }

    public function getLogDir(): string
    {
        return $this->varDir . '/log';
    }

    private function configureContainer(ContainerConfigurator $container): void
    {
        $session = [
            'enabled' => true,
            'storage_factory_id' => 'session.storage.factory.native',
            'cookie_secure' => 'auto',
            'cookie_samesite' => 'lax',
            'save_path' => null,
            // Symfony sets it with ini_set; stickless gives stored sessions this TTL.
            'gc_maxlifetime' => 3600,
        ];
        $threshold = getenv('FW_METADATA_UPDATE_THRESHOLD');
        if ($threshold !== false && $threshold !== '') {
            $session['metadata_update_threshold'] = (int) $threshold;
        }
        if ($this->setup === 'native') {
            $session['handler_id'] = null;
        } else {
            $session['handler_id'] = 'stickless.session_handler';
            $container->services()
                ->set('stickless.session_handler', \Stickless\SessionHandler::class)
                ->args(['%env(STICKLESS_URL)%']);
        }
        // Symfony's own logger, to PHP's error_log (the pod's php-error.log),
        // from warnings up: PHP's warnings during a request are logged too.
        $container->services()
            ->set('logger', \Symfony\Component\HttpKernel\Log\Logger::class)
            ->args(['warning']);
        $container->extension('framework', [
            'secret' => 'stickless-frameworks-test',
            'http_method_override' => false,
            'handle_all_throwables' => true,
            'php_errors' => ['log' => true],
            'router' => ['utf8' => true],
            'session' => $session,
        ]);
    }

    private function configureRoutes(RoutingConfigurator $routes): void
    {
        foreach (['visit', 'login', 'whoami', 'rotate', 'flash', 'count', 'logout'] as $name) {
            $routes->add($name, "/$name")->controller([$this, $name])->methods(['GET']);
        }
    }

    public function visit(Request $request): JsonResponse
    {
        $session = $request->getSession();
        $session->set('visits', (int) $session->get('visits', 0) + 1);
        return $this->state($session);
    }

    public function login(Request $request): JsonResponse
    {
        $session = $request->getSession();
        $session->set('user_id', $request->query->getInt('user'));
        // What Symfony's security does on login (SessionAuthenticationStrategy).
        $session->migrate(true);
        return $this->state($session);
    }

    public function whoami(Request $request): JsonResponse
    {
        $state = $this->state($request->getSession());
        $this->hold($request);
        return $state;
    }

    public function rotate(Request $request): JsonResponse
    {
        $session = $request->getSession();
        // A started session, as a firewall leaves it (migrate() and
        // invalidate() regenerate nothing before the session starts).
        $session->start();
        $session->migrate(true);
        return $this->state($session);
    }

    public function flash(Request $request): JsonResponse
    {
        $session = $request->getSession();
        $flashes = $session->getFlashBag();
        $flashes->add('notice', 'Saved.');
        $flashes->add('notice', 'Welcome back!');
        return $this->state($session, false);
    }

    public function count(Request $request): JsonResponse
    {
        $session = $request->getSession();
        $session->set('counter', (int) $session->get('counter', 0) + 1);
        $state = $this->state($session);
        $this->hold($request);
        return $state;
    }

    /** Keeps the session open hold_ms (<= 1000) longer, as a slow page would. */
    private function hold(Request $request): void
    {
        $hold = min(1000, max(0, $request->query->getInt('hold_ms')));
        if ($hold > 0) {
            usleep($hold * 1000);
        }
    }

    public function logout(Request $request): JsonResponse
    {
        $session = $request->getSession();
        $session->start();
        $session->invalidate();
        return $this->state($session);
    }

    private function state(SessionInterface $session, bool $showFlashes = true): JsonResponse
    {
        // Read first: that starts the session, and then it has its ID.
        $state = [
            'user' => $session->get('user_id'),
            'n' => $session->get('counter'),
            'visits' => $session->get('visits'),
            'notice' => $showFlashes ? $session->getFlashBag()->get('notice') : null,
        ];
        return new JsonResponse($state + [
            'sid' => $session->getId(),
            'framework' => 'symfony ' . self::VERSION,
            'setup' => $this->setup,
            'pod' => getenv('POD_NAME') ?: 'unknown',
            'handler' => ini_get('session.save_handler'),
            'upload_progress' => ini_get('session.upload_progress.enabled'),
        ], 200, ['X-Pod' => getenv('POD_NAME') ?: 'unknown']);
    }
}
