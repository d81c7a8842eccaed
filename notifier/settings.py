"""Settings, read once from the environment and validated at start-up."""

from dataclasses import dataclass, field, fields

from notifier.errors import SettingsError

SMTP_SECURITY = ("starttls", "ssl", "none")


def _text(env, name, default=None):
    value = env.get(name, "")
    value = value.strip()
    return value or default


def _int(env, name, default, minimum=None, maximum=None):
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be at most {maximum}, got {value}")
    return value


def _float(env, name, default, minimum=0.0):
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum or value == float("inf"):
        raise SettingsError(f"{name} must be a finite number >= {minimum}")
    return value


def _url(env, name, default):
    value = _text(env, name, default).rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise SettingsError(f"{name} must start with http:// or https://")
    return value


def _secrets(env, name):
    raw = _text(env, name)
    if raw is None:
        return ()
    return tuple(s.strip() for s in raw.split(",") if s.strip())


def _choice(env, name, default, choices):
    value = (_text(env, name) or default).lower()
    if value not in choices:
        allowed = ", ".join(choices)
        raise SettingsError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _digits(env, name):
    raw = _text(env, name)
    if raw is None:
        return None
    digits = raw.lstrip("+")
    if not digits.isascii() or not digits.isdigit() or not 8 <= len(digits) <= 15:
        raise SettingsError(f"{name} must be a phone number in E.164 digits")
    return digits


@dataclass(frozen=True)
class Settings:
    """Every knob of the service. Build it with `Settings.from_env()`."""

    database_url: str = "sqlite:///notifier.db"
    host: str = "127.0.0.1"
    port: int = 8080
    http_threads: int = 8
    api_token: str | None = field(default=None, repr=False)
    gateway_secrets: tuple = field(default=(), repr=False)
    signature_tolerance: int = 300
    stripe_webhook_secrets: tuple = field(default=(), repr=False)
    stripe_secret_key: str | None = field(default=None, repr=False)
    stripe_api_url: str = "https://api.stripe.com"
    paymob_hmac_secret: str | None = field(default=None, repr=False)
    moyasar_secret_key: str | None = field(default=None, repr=False)
    moyasar_webhook_token: str | None = field(default=None, repr=False)
    moyasar_api_url: str = "https://api.moyasar.com"
    tap_secret_key: str | None = field(default=None, repr=False)
    tap_api_url: str = "https://api.tap.company"
    myfatoorah_webhook_secret: str | None = field(default=None, repr=False)
    myfatoorah_api_key: str | None = field(default=None, repr=False)
    myfatoorah_api_url: str = "https://api.myfatoorah.com"
    gateway_api_timeout: float = 10.0
    success_url: str = "/paid"
    failure_url: str = "/payment-failed"
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_security: str = "starttls"
    smtp_ca_file: str | None = None
    smtp_timeout: float = 20.0
    mail_from: str = "shop@localhost"
    mail_language: str = "ar"
    shop_name: str = "Shop"
    whatsapp_api_url: str = "https://graph.facebook.com/v21.0"
    whatsapp_token: str | None = field(default=None, repr=False)
    whatsapp_phone_number_id: str | None = None
    whatsapp_language: str = "ar"
    whatsapp_template_admin: str = "order_paid_admin"
    whatsapp_template_courier: str = "order_paid_courier"
    whatsapp_connect_timeout: float = 5.0
    whatsapp_read_timeout: float = 20.0
    admin_whatsapp: str | None = None
    threads: int = 4
    max_in_flight: int = 0
    drain_seconds: float = 10.0
    max_attempts: int = 8
    lease_seconds: float = 60.0
    sweep_seconds: float = 2.0
    backoff_base: float = 2.0
    backoff_max: float = 600.0
    log_level: str = "INFO"

    @property
    def in_flight_limit(self):
        """How many ids the pool holds at once; beyond it rows wait on disk."""
        return self.max_in_flight or self.threads * 4

    @property
    def smtp_configured(self):
        return self.smtp_host is not None

    @property
    def whatsapp_configured(self):
        return self.whatsapp_token is not None

    def replace(self, **changes):
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)

    @classmethod
    def from_env(cls, env):
        """Read `env` (a mapping like os.environ); raise SettingsError if bad."""
        settings = cls(
            database_url=_text(env, "DATABASE_URL", cls.database_url),
            host=_text(env, "HOST", cls.host),
            port=_int(env, "PORT", cls.port, 0, 65535),
            http_threads=_int(env, "HTTP_THREADS", cls.http_threads, 1, 256),
            api_token=_text(env, "API_TOKEN"),
            gateway_secrets=_secrets(env, "GATEWAY_SECRET"),
            signature_tolerance=_int(
                env, "SIGNATURE_TOLERANCE_SECONDS", cls.signature_tolerance, 1
            ),
            stripe_webhook_secrets=_secrets(env, "STRIPE_WEBHOOK_SECRET"),
            stripe_secret_key=_text(env, "STRIPE_SECRET_KEY"),
            stripe_api_url=_url(env, "STRIPE_API_URL", cls.stripe_api_url),
            paymob_hmac_secret=_text(env, "PAYMOB_HMAC_SECRET"),
            moyasar_secret_key=_text(env, "MOYASAR_SECRET_KEY"),
            moyasar_webhook_token=_text(env, "MOYASAR_WEBHOOK_TOKEN"),
            moyasar_api_url=_url(env, "MOYASAR_API_URL", cls.moyasar_api_url),
            tap_secret_key=_text(env, "TAP_SECRET_KEY"),
            tap_api_url=_url(env, "TAP_API_URL", cls.tap_api_url),
            myfatoorah_webhook_secret=_text(env, "MYFATOORAH_WEBHOOK_SECRET"),
            myfatoorah_api_key=_text(env, "MYFATOORAH_API_KEY"),
            myfatoorah_api_url=_url(env, "MYFATOORAH_API_URL", cls.myfatoorah_api_url),
            gateway_api_timeout=_float(
                env, "GATEWAY_API_TIMEOUT", cls.gateway_api_timeout, 0.1
            ),
            success_url=_text(env, "SUCCESS_URL", cls.success_url),
            failure_url=_text(env, "FAILURE_URL", cls.failure_url),
            smtp_host=_text(env, "SMTP_HOST"),
            smtp_port=_int(env, "SMTP_PORT", cls.smtp_port, 1, 65535),
            smtp_username=_text(env, "SMTP_USERNAME"),
            smtp_password=_text(env, "SMTP_PASSWORD"),
            smtp_security=_choice(
                env, "SMTP_SECURITY", cls.smtp_security, SMTP_SECURITY
            ),
            smtp_ca_file=_text(env, "SMTP_CA_FILE"),
            smtp_timeout=_float(env, "SMTP_TIMEOUT", cls.smtp_timeout, 0.1),
            mail_from=_text(env, "MAIL_FROM", cls.mail_from),
            mail_language=_choice(env, "MAIL_LANGUAGE", "ar", ("ar", "en")),
            shop_name=_text(env, "SHOP_NAME", cls.shop_name),
            whatsapp_api_url=_text(
                env, "WHATSAPP_API_URL", cls.whatsapp_api_url
            ).rstrip("/"),
            whatsapp_token=_text(env, "WHATSAPP_TOKEN"),
            whatsapp_phone_number_id=_text(env, "WHATSAPP_PHONE_NUMBER_ID"),
            whatsapp_language=_text(env, "WHATSAPP_LANGUAGE", cls.whatsapp_language),
            whatsapp_template_admin=_text(
                env, "WHATSAPP_TEMPLATE_ADMIN", cls.whatsapp_template_admin
            ),
            whatsapp_template_courier=_text(
                env, "WHATSAPP_TEMPLATE_COURIER", cls.whatsapp_template_courier
            ),
            whatsapp_connect_timeout=_float(
                env, "WHATSAPP_CONNECT_TIMEOUT", cls.whatsapp_connect_timeout, 0.1
            ),
            whatsapp_read_timeout=_float(
                env, "WHATSAPP_READ_TIMEOUT", cls.whatsapp_read_timeout, 0.1
            ),
            admin_whatsapp=_digits(env, "ADMIN_WHATSAPP"),
            threads=_int(env, "NOTIFIER_THREADS", cls.threads, 1, 256),
            max_in_flight=_int(env, "NOTIFIER_MAX_IN_FLIGHT", 0, 0, 10000),
            drain_seconds=_float(env, "NOTIFIER_DRAIN_SECONDS", cls.drain_seconds),
            max_attempts=_int(env, "NOTIFIER_MAX_ATTEMPTS", cls.max_attempts, 1, 100),
            lease_seconds=_float(env, "NOTIFIER_LEASE_SECONDS", cls.lease_seconds, 1.0),
            sweep_seconds=_float(
                env, "NOTIFIER_SWEEP_SECONDS", cls.sweep_seconds, 0.05
            ),
            backoff_base=_float(env, "NOTIFIER_BACKOFF_SECONDS", cls.backoff_base),
            backoff_max=_float(env, "NOTIFIER_BACKOFF_MAX_SECONDS", cls.backoff_max),
            log_level=_choice(
                env,
                "LOG_LEVEL",
                cls.log_level,
                ("debug", "info", "warning", "error"),
            ).upper(),
        )
        settings.check()
        return settings

    def check(self):
        """Cross-field checks that a single variable cannot make alone."""
        if self.whatsapp_token and not self.whatsapp_phone_number_id:
            raise SettingsError(
                "WHATSAPP_PHONE_NUMBER_ID must be set when WHATSAPP_TOKEN is set"
            )
        if not self.whatsapp_api_url.startswith(("http://", "https://")):
            raise SettingsError("WHATSAPP_API_URL must start with http:// or https://")
        if "://" not in self.database_url:
            raise SettingsError(
                "DATABASE_URL must look like sqlite:///path or postgresql://..."
            )
        if "@" not in self.mail_from:
            raise SettingsError("MAIL_FROM must be an email address")
        longest_send = max(
            self.smtp_timeout,
            self.whatsapp_connect_timeout + self.whatsapp_read_timeout,
        )
        if self.lease_seconds <= longest_send:
            raise SettingsError(
                "NOTIFIER_LEASE_SECONDS must be longer than the longest send "
                f"timeout ({longest_send:g} s)"
            )
