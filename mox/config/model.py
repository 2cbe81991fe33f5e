"""The typed model of mox.conf (static) and domains.conf (dynamic).

Attribute names are upstream mox's config keys, so a file written by upstream
loads unchanged. Defaults are Go's zero values; the effective defaults that
upstream applies (ports, paths, mailbox names) are applied by
:mod:`mox.config.load` into derived fields or at use.

Documentation strings are our own words; ``mox config describe-static`` and
``describe-domains`` print them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mox.config.sconf import Duration, derived, option, required

# ---------------------------------------------------------------------------
# mox.conf


@dataclass
class CAConfig:
    AdditionalToSystem: bool = option("Trust the certificates below in addition to the system's root certificates, instead of only them.", default=False)
    CertFiles: list[str] = option("PEM files with extra CA certificates to trust, relative to the directory of mox.conf.", factory=list)


@dataclass
class GlobalTLS:
    CA: CAConfig | None = option("Certificate authorities trusted for outgoing TLS connections (SMTP delivery, HTTPS requests).")


@dataclass
class ExternalAccountBinding:
    KeyID: str = required("Key identifier given by the ACME provider.")
    KeyFile: str = required(
        "File with the base64url-encoded key that signs the account registration request, relative to the directory of mox.conf."
    )


@dataclass
class ACME:
    DirectoryURL: str = required(
        "ACME directory URL of the certificate authority, e.g. https://acme-v02.api.letsencrypt.org/directory for Let's Encrypt."
    )
    RenewBefore: Duration = option("Renew certificates this long before they expire. Default 30 days.", default=Duration(0))
    ContactEmail: str = required(
        "Address registered with the ACME provider, used by it for expiry warnings. Better not an address that depends on this server's own TLS working."
    )
    Port: int = option(
        "Port for tls-alpn-01 validation, 443 by default. Only change it when port 443 is forwarded here by other means; "
        "validation needs the original TLS connection, an HTTPS proxy in between does not work.",
        default=0,
    )
    IssuerDomainName: str = option(
        "Domain of the certificate authority, for the suggested CAA DNS records. Set automatically for Let's Encrypt.", default=""
    )
    ExternalAccountBinding: ExternalAccountBinding | None = option(
        "Binding of the new ACME account to an existing account at the provider, for providers that require it."
    )
    # Derived.
    DirectoryHost: str = derived(default="")


@dataclass
class KeyCert:
    CertFile: str = required("Certificate chain (leaf first, then intermediates) in PEM.")
    KeyFile: str = required("Private key for the certificate in PEM: PKCS#8, PKCS#1 or SEC 1 EC keys.")


@dataclass
class ListenerTLS:
    ACME: str = option("Name of an ACME provider from the top-level ACME section that provides certificates.", default="")
    KeyCerts: list[KeyCert] = option(
        "Certificate and key files, read at start (as root when started as root) so they need not be readable by the mox user. "
        "If the key stays the same across renewals, also list it in HostPrivateKeyFiles to publish DANE TLSA records.",
        factory=list,
    )
    MinVersion: str = option("Lowest TLS version accepted: TLSv1.0, TLSv1.1, TLSv1.2 or TLSv1.3. Default TLSv1.2.", default="")
    HostPrivateKeyFiles: list[str] = option(
        "Private keys (PEM) for certificates requested through ACME, listed so DANE TLSA records can be made before any "
        "certificate exists. RSA 2048-bit and ECDSA P-256 keys are used; the first of each kind is used for new certificates.",
        factory=list,
    )
    ClientAuthDisabled: bool = option("Do not ask TLS clients for a client certificate. Helps with clients that mishandle the request.", default=False)


@dataclass
class SMTPListener:
    Enabled: bool = required(default=False)
    Port: int = option("Default 25.", default=0)
    NoSTARTTLS: bool = option("Do not offer STARTTLS. Not recommended.", default=False)
    RequireSTARTTLS: bool = option(
        "Refuse messages on connections that did not do STARTTLS. Pair with MTA-STS or DANE. Senders without TLS cannot deliver. "
        "Messages to TLS reporting addresses are still accepted without TLS.",
        default=False,
    )
    NoRequireTLS: bool = option(
        "Do not announce the REQUIRETLS extension (RFC 8689), e.g. when forwarding to mailing list members whose servers lack it.",
        default=False,
    )
    DNSBLs: list[str] = option(
        "DNS block list zones consulted for incoming messages whose sender has too little reputation for a decision. A listed IP "
        "gets its message rejected. Our own sending IPs are also checked against these lists periodically.",
        factory=list,
    )
    FirstTimeSenderDelay: Duration | None = option("Wait this long before accepting a message from a sender never seen by the account. Default 15s.")
    TLSSessionTicketsDisabled: bool | None = option("Override whether TLS session tickets are used; disabling them can help with broken peers.")


@dataclass
class SubmissionListener:
    Enabled: bool = required(default=False)
    Port: int = option("Default 587.", default=0)
    NoRequireSTARTTLS: bool = option("Allow authentication and submission without STARTTLS, sending passwords in the clear. Not recommended.", default=False)


@dataclass
class SubmissionsListener:
    Enabled: bool = required(default=False)
    Port: int = option("Default 465.", default=0)
    EnabledOnHTTPS: bool = option("Also speak SMTP on the HTTPS port when a TLS client asks for ALPN protocol 'smtp' (for censorship circumvention).", default=False)


@dataclass
class IMAPListener:
    Enabled: bool = required(default=False)
    Port: int = option("Default 143.", default=0)
    NoRequireSTARTTLS: bool = option("Allow logins without STARTTLS. Only when the connection is protected otherwise, e.g. by a VPN.", default=False)


@dataclass
class IMAPSListener:
    Enabled: bool = required(default=False)
    Port: int = option("Default 993.", default=0)
    EnabledOnHTTPS: bool = option("Also speak IMAP on the HTTPS port when a TLS client asks for ALPN protocol 'imap'.", default=False)


@dataclass
class WebService:
    Enabled: bool = required(default=False)
    Port: int = option("Default 80 for HTTP, 443 for HTTPS.", default=0)
    Path: str = option("URL path the service is served under; should end with a slash (cookies are scoped to it).", default="")
    Forwarded: bool = option("Trust X-Forwarded-* headers (from a reverse proxy) for the client IP and for secure cookies.", default=False)


@dataclass
class MetricsListener:
    Enabled: bool = required(default=False)
    Port: int = option("Default 8010.", default=0)


@dataclass
class PprofListener:
    Enabled: bool = required(default=False)
    Port: int = option("Default 8011.", default=0)


@dataclass
class AutoconfigListener:
    Enabled: bool = required(default=False)
    Port: int = option("Default 443.", default=0)
    NonTLS: bool = option("Serve plain HTTP on the port, for use behind a reverse proxy.", default=False)
    Forwarded: bool = option("Trust X-Forwarded-* headers for the client IP.", default=False)


@dataclass
class MTASTSListener:
    Enabled: bool = required(default=False)
    Port: int = option("Default 443.", default=0)
    NonTLS: bool = option("Serve plain HTTP on the port, for use behind a reverse proxy.", default=False)
    Forwarded: bool = option("Trust X-Forwarded-* headers for the client IP.", default=False)


@dataclass
class WebserverListener:
    Enabled: bool = required(default=False)
    Port: int = option("Default 80 for HTTP, 443 for HTTPS.", default=0)
    RateLimitDisabled: bool = option("Do not rate limit requests on this port.", default=False)


@dataclass
class Listener:
    IPs: list[str] = required(
        "IP addresses to listen on. 0.0.0.0 and :: mean all IPv4 and all IPv6 addresses; explicit addresses are better, "
        "since outgoing connections are then made from them only.",
        factory=list,
    )
    NATIPs: list[str] = option(
        "When behind NAT: the public IPs that IPs above are reached through, used by DNS self-checks and for TLS certificates.",
        factory=list,
    )
    IPsNATed: bool = option("Deprecated, use NATIPs. The IPs are behind NAT; skips IP-related DNS checks.", default=False)
    Hostname: str = option(
        "Host name for this listener, instead of the global Hostname. Web admin, account, webmail and webapi answer "
        "requests for IPs, this name and localhost.",
        default="",
    )
    TLS: ListenerTLS | None = option("TLS for STARTTLS, implicit TLS and HTTPS on this listener.")
    SMTPMaxMessageSize: int = option("Largest message in bytes accepted or sent. Default 100MB.", default=0)
    SMTP: SMTPListener = option("Incoming SMTP from other mail servers.", factory=SMTPListener)
    Submission: SubmissionListener = option(
        "SMTP submission for mail clients, plain text upgraded with STARTTLS. Submissions (implicit TLS) is preferred.",
        factory=SubmissionListener,
    )
    Submissions: SubmissionsListener = option("SMTP submission over implicit TLS. Needs TLS.", factory=SubmissionsListener)
    IMAP: IMAPListener = option("IMAP for mail clients, plain text upgraded with STARTTLS. IMAPS is preferred.", factory=IMAPListener)
    IMAPS: IMAPSListener = option("IMAP over implicit TLS. Needs TLS.", factory=IMAPSListener)
    AccountHTTP: WebService = option("Account web pages over plain HTTP, where users change their password and settings. Default path /.", factory=WebService)
    AccountHTTPS: WebService = option("Account web pages over HTTPS. Needs TLS.", factory=WebService)
    AdminHTTP: WebService = option(
        "Admin web pages over plain HTTP, default path /admin/. Best enabled only on internal IPs, reached through an SSH tunnel or VPN.",
        factory=WebService,
    )
    AdminHTTPS: WebService = option("Admin web pages over HTTPS. Needs TLS.", factory=WebService)
    WebmailHTTP: WebService = option("Webmail over plain HTTP, default path /webmail/.", factory=WebService)
    WebmailHTTPS: WebService = option("Webmail over HTTPS. Needs TLS.", factory=WebService)
    WebAPIHTTP: WebService = option("The HTTP/JSON web API over plain HTTP, default path /webapi/.", factory=WebService)
    WebAPIHTTPS: WebService = option("The HTTP/JSON web API over HTTPS. Needs TLS.", factory=WebService)
    MetricsHTTP: MetricsListener = option("Prometheus metrics over HTTP. Not for public IPs.", factory=MetricsListener)
    PprofHTTP: PprofListener = option("Profiling endpoints over HTTP. Never on public IPs.", factory=PprofListener)
    AutoconfigHTTPS: AutoconfigListener = option(
        "Autoconfig/autodiscover documents that let mail clients find their settings. Needs TLS unless NonTLS.",
        factory=AutoconfigListener,
    )
    MTASTSHTTPS: MTASTSListener = option("MTA-STS policies (RFC 8461) for the configured domains. Needs TLS unless NonTLS.", factory=MTASTSListener)
    WebserverHTTP: WebserverListener = option("Serve the configured WebHandlers over plain HTTP.", factory=WebserverListener)
    WebserverHTTPS: WebserverListener = option(
        "Serve the configured WebHandlers over HTTPS; needs ACME or a certificate for each handler's domain.", factory=WebserverListener
    )
    # Derived.
    HostnameDomain: Any = derived()


@dataclass
class Postmaster:
    Account: str = required("Account that receives mail for postmaster addresses.")
    Mailbox: str = required("Mailbox in that account, e.g. Postmaster or Inbox.")


@dataclass
class HostTLSRPT:
    Account: str = required("Account that receives TLS reports for this host, typically the postmaster's.")
    Mailbox: str = required("Mailbox for the reports, e.g. TLSRPT.")
    Localpart: str = required("Local part of the address at the host name that reports are sent to, e.g. tlsreports.")
    # Derived.
    ParsedLocalpart: str = derived(default="")


@dataclass
class SpecialUseMailboxes:
    Sent: str = option(default="")
    Archive: str = option(default="")
    Trash: str = option(default="")
    Draft: str = option(default="")
    Junk: str = option(default="")


@dataclass
class InitialMailboxes:
    SpecialUse: SpecialUseMailboxes = option("Mailboxes with a special-use role (RFC 6154) to create, by role.", factory=SpecialUseMailboxes)
    Regular: list[str] = option("Mailboxes without a special-use role to create.", factory=list)


@dataclass
class SMTPAuth:
    Username: str = required()
    Password: str = required()
    Mechanisms: list[str] = option(
        "SASL mechanisms allowed, strongest first. Default SCRAM-SHA-256-PLUS, SCRAM-SHA-256, SCRAM-SHA-1-PLUS, SCRAM-SHA-1 and "
        "CRAM-MD5; PLAIN only when listed. Listing only what the server supports prevents downgrades.",
        factory=list,
    )


@dataclass
class TransportSMTP:
    Host: str = required("Host to connect to; also the name its TLS certificate is verified against.")
    Port: int = option("Default 25 for SMTP, 465 for submissions, 587 for submission.", default=0)
    STARTTLSInsecureSkipVerify: bool = option("Accept a TLS certificate that cannot be verified after STARTTLS.", default=False)
    NoSTARTTLS: bool = option("Do not use STARTTLS: credentials and messages travel in the clear.", default=False)
    Auth: SMTPAuth | None = option("Credentials to authenticate with at the remote server.")


@dataclass
class TransportSocks:
    Address: str = required("SOCKS proxy address, host:port.")
    RemoteIPs: list[str] = required(
        "IPs the proxy's connections come from; list them in SPF, and give them reverse DNS pointing at RemoteHostname.", factory=list
    )
    RemoteHostname: str = required("Host name of RemoteIPs, used in EHLO.")


@dataclass
class TransportDirect:
    DisableIPv4: bool = option("Never connect to remote servers over IPv4.", default=False)
    DisableIPv6: bool = option("Never connect to remote servers over IPv6.", default=False)


@dataclass
class TransportFail:
    SMTPCode: int = option("SMTP code, optionally with an enhanced code, for the failure. Default 554.", default=0)
    SMTPMessage: str = option("Text included in the failure, shown in the DSN.", default="")


@dataclass
class Transport:
    Submissions: TransportSMTP | None = option("Submit to another server's queue over implicit TLS.")
    Submission: TransportSMTP | None = option("Submit to another server's queue over plain TCP, with STARTTLS when offered.")
    SMTP: TransportSMTP | None = option("Relay over SMTP (with STARTTLS when offered), typically unauthenticated.")
    Socks: TransportSocks | None = option("Direct delivery, but connecting through a SOCKS proxy.")
    Direct: TransportDirect | None = option("Direct delivery with tweaks to the outgoing connections.")
    Fail: TransportFail | None = option("Fail every delivery attempt at once.")


@dataclass
class Static:
    DataDir: str = required(
        "Directory for all data: queue, accounts and messages, ACME certificates. Relative paths are relative to the directory of mox.conf."
    )
    LogLevel: str = required("Default log level: error, info, debug, trace, traceauth or tracedata. Trace levels log protocol transcripts; traceauth adds credentials, tracedata whole messages.")
    PackageLogLevels: dict[str, str] = option("Log levels per package (e.g. smtpserver, imapserver, queue), overriding LogLevel.", factory=dict)
    User: str = option("User (or numeric uid) to run as after binding ports as root. Default mox.", default="")
    NoFixPermissions: bool = option("Do not fix ownership and permissions of the config and data directories at start.", default=False)
    Hostname: str = required("Full host name of this machine, e.g. mail.example.com.")
    CheckUpdates: bool = option("Check daily, with one DNS TXT lookup, whether a new release exists, and mail the changelog to the postmaster.", default=False)
    Pedantic: bool = option("Treat protocol violations that are common in practice as errors.", default=False)
    TLS: GlobalTLS = option("TLS settings for outgoing connections.", factory=GlobalTLS)
    ACME: dict[str, ACME] = option("ACME providers for automatic TLS certificates, by a name that listener TLS configs refer to.", factory=dict)
    AdminPasswordFile: str = option("File with the bcrypt hash of the admin password for the admin web pages.", default="")
    Listeners: dict[str, Listener] = required(
        "Listeners: groups of IPs with the services enabled on them. SMTP and IMAP serve all domains. A listener named "
        "'public' gets extra checks (ACME, DNSBL monitoring).",
        factory=dict,
    )
    Postmaster: Postmaster = required(
        "Where mail for postmaster is delivered: bare 'postmaster', postmaster@<hostname>, and postmaster@ each domain without its own postmaster address.",
        factory=Postmaster,
    )
    HostTLSRPT: HostTLSRPT = option(
        "Where TLS reports about this host (per MX host, for DANE) are delivered. Without it no host TLSRPT record is suggested.",
        factory=HostTLSRPT,
    )
    InitialMailboxes: InitialMailboxes = option(
        "Mailboxes created for new accounts besides Inbox. Default: Sent, Archive, Trash, Drafts and Junk.", factory=InitialMailboxes
    )
    DefaultMailboxes: list[str] = option("Deprecated, use InitialMailboxes. Mailboxes created for new accounts besides Inbox.", factory=list)
    Transports: dict[str, Transport] = option(
        "Ways to deliver outgoing mail other than direct SMTP (e.g. through a smarthost), referenced by name from Routes.", factory=dict
    )
    NoOutgoingDMARCReports: bool = option(
        "Do not send DMARC aggregate reports. By default they are sent from postmaster@<hostname> to domains whose DMARC record asks for them.",
        default=False,
    )
    NoOutgoingTLSReports: bool = option(
        "Do not send TLS reports. By default daily reports are sent to domains whose TLSRPT record asks for them.", default=False
    )
    OutgoingTLSReportsForAllSuccess: bool = option("Send TLS reports also when every connection succeeded.", default=False)
    QuotaMessageSize: int = option(
        "Default limit on the total size of message files per account, in bytes; 0 for none. Accounts can override it.", default=0
    )
    # Derived.
    HostnameDomain: Any = derived()
    UID: int = derived(default=0)
    GID: int = derived(default=0)


# ---------------------------------------------------------------------------
# domains.conf


@dataclass
class Canonicalization:
    HeaderRelaxed: bool = required("Relaxed header canonicalization: tolerates whitespace changes in headers.", default=False)
    BodyRelaxed: bool = required("Relaxed body canonicalization: tolerates whitespace changes in the body.", default=False)


@dataclass
class Selector:
    Hash: str = option("sha256 (default) or sha1 (old, not recommended).", default="")
    Canonicalization: Canonicalization = option(factory=Canonicalization)
    Headers: list[str] = option("Header fields to sign. Default: a sensible set including From, To, Subject, Date and Message-ID.", factory=list)
    DontSealHeaders: bool = option("Do not protect against extra instances of signed headers being added. Not recommended.", default=False)
    Expiration: str = option("How long signatures stay valid, a duration like 72h; days at least, for relays and retries.", default="")
    PrivateKeyFile: str = required("RSA or Ed25519 private key in PKCS#8 PEM, relative to the directory of domains.conf.")
    # Derived.
    HashEffective: str = derived(default="")
    HeadersEffective: list[str] = derived(factory=list)
    Algorithm: str = derived(default="")
    ExpirationSeconds: int = derived(default=0)
    Key: Any = derived()
    Domain: Any = derived()


@dataclass
class DKIM:
    Selectors: dict[str, Selector] = required(
        "DKIM selectors by name, each with a key. Each needs a DNS record; list it under Sign to sign with it.", factory=dict
    )
    Sign: list[str] = option("Selectors that outgoing messages are signed with.", factory=list)


@dataclass
class DMARC:
    Localpart: str = required("Local part of the address that receives DMARC reports, ASCII only, e.g. dmarcreports.")
    Domain: str = option(
        "Domain of the reporting address, when it differs from this domain (for domains not fully hosted here). Unicode name.", default=""
    )
    Account: str = required("Account that receives the reports.")
    Mailbox: str = required("Mailbox for the reports, e.g. DMARC.")
    # Derived.
    ParsedLocalpart: str = derived(default="")
    DNSDomain: Any = derived()


@dataclass
class MTASTS:
    PolicyID: str = required("Version of the policy, repeated in the DNS record. Change the policy here first, then the DNS record.")
    Mode: str = required("enforce (verified TLS required), testing (failures are only reported) or none (phasing a policy out).")
    MaxAge: Duration = required("How long senders may cache the policy; typically one or more weeks.", default=Duration(0))
    MX: list[str] = option(
        "Host names allowed as MX; a leading *. matches one label. Default: the configured host name.", factory=list
    )


@dataclass
class TLSRPT:
    Localpart: str = required("Local part of the address that receives TLS reports, e.g. tlsreports.")
    Domain: str = option("Domain of the reporting address, when it differs from this domain. Unicode name.", default="")
    Account: str = required("Account that receives the reports.")
    Mailbox: str = required("Mailbox for the reports, e.g. TLSRPT.")
    # Derived.
    ParsedLocalpart: str = derived(default="")
    DNSDomain: Any = derived()


@dataclass
class Route:
    FromDomain: list[str] = option(
        "Matches when the envelope sender's domain is one of these (a leading dot also matches subdomains), or when empty.", factory=list
    )
    ToDomain: list[str] = option("Like FromDomain, for the envelope recipient's domain.", factory=list)
    MinimumAttempts: int = option(
        "Matches only after this many delivery attempts, e.g. to use a smarthost after direct delivery failed a few times.", default=0
    )
    Transport: str = required("Name of the transport (from mox.conf Transports) used when the route matches.")


@dataclass
class Alias:
    Addresses: list[str] = required(
        "Local addresses the alias delivers to. A member that is also a direct recipient gets the message once; the sender "
        "(by From header) does not get a copy.",
        factory=list,
    )
    PostPublic: bool = option("Anyone may send to the alias, not just its members.", default=False)
    ListMembers: bool = option("Members may see the member addresses.", default=False)
    AllowMsgFrom: bool = option("Members may send with the alias address as message From.", default=False)


@dataclass
class Domain:
    Disabled: bool = option(
        "Disable the domain, e.g. during a migration: no ACME certificates for it, incoming mail refused with a temporary "
        "error, and submissions from its addresses refused. Its accounts can still log in.",
        default=False,
    )
    Description: str = option("Free-form description.", default="")
    ClientSettingsDomain: str = option(
        "Host name given to mail clients instead of the server's host name, e.g. mail.<domain>, so clients need no change "
        "if hosting moves. Unicode name.",
        default="",
    )
    LocalpartCatchallSeparator: str = option(
        "Separator after which the rest of the local part is ignored for delivery, e.g. + delivers you+tag@ to you@.", default=""
    )
    LocalpartCatchallSeparators: list[str] = option(
        "Like LocalpartCatchallSeparator, for several separators. Set only one of the two.", factory=list
    )
    LocalpartCaseSensitive: bool = option("Local parts are case-sensitive for delivery.", default=False)
    DKIM: DKIM = option("DKIM signing keys (RFC 6376): signing makes the domain accountable for its mail and builds reputation.", factory=DKIM)
    DMARC: DMARC | None = option("Where DMARC aggregate reports (RFC 7489) for this domain are delivered; they are parsed and stored too.")
    MTASTS: MTASTS | None = option("The MTA-STS policy (RFC 8461) served for this domain.")
    TLSRPT: TLSRPT | None = option("Where TLS reports (RFC 8460) for this domain are delivered; they are parsed and stored too.")
    Routes: list[Route] = option("Routes for outgoing mail from this domain, tried after account routes and before global routes.", factory=list)
    Aliases: dict[str, Alias] = option("Aliases (lists) by local part, delivering to local accounts.", factory=dict)
    # Derived.
    DNSDomain: Any = derived()
    ClientSettingsDNSDomain: Any = derived()
    LocalpartCatchallSeparatorsEffective: list[str] = derived(factory=list)


@dataclass
class Ruleset:
    SMTPMailFromRegexp: str = option("Matches when this regular expression matches (part of) the SMTP MAIL FROM address.", default="")
    MsgFromRegexp: str = option("Matches when this regular expression matches (part of) the message From address.", default="")
    VerifiedDomain: str = option("Matches when this domain or a subdomain passed SPF or DKIM verification.", default="")
    HeadersRegexp: dict[str, str] = option(
        "Header field name and value regular expressions (lower case) that must all match some header of the message.", factory=dict
    )
    IsForward: bool = option(
        "Junk filtering only: the message comes through a forwarder, so DMARC failures do not reject it and the forwarder "
        "is not used for reputation. Needs SMTPMailFromRegexp and VerifiedDomain.",
        default=False,
    )
    ListAllowDomain: str = option(
        "Junk filtering only: messages verified for this domain (a mailing list) are accepted without spam checks.", default=""
    )
    AcceptRejectsToMailbox: str = option(
        "Junk filtering only: accept messages classified as spam into this mailbox instead of rejecting them.", default=""
    )
    Mailbox: str = required("Mailbox that matching messages are delivered to.")
    Comment: str = option("Free-form comment.", default="")


@dataclass
class Destination:
    Mailbox: str = option("Mailbox for messages no ruleset matches. Default Inbox.", default="")
    Rulesets: list[Ruleset] = option("Delivery rules, tried in order; the first match decides the mailbox.", factory=list)
    SMTPError: str = option(
        "Refuse deliveries to this address at RCPT TO with this reply, starting with code 421 or 550 "
        "(a text is added when only the code is given). Useful next to a catchall.",
        default="",
    )
    MessageAuthRequiredSMTPError: str = option(
        "Refuse, with this text, messages whose From domain has no aligned SPF or DKIM pass (a DMARC-like check even "
        "without a DMARC record). Useful for addresses that answer automatically.",
        default="",
    )
    FullName: str = option("Name shown in From when composing mail from this address in webmail.", default="")


@dataclass
class OutgoingWebhook:
    URL: str = required("URL that webhooks are POSTed to.")
    Authorization: str = option("Value for the Authorization header of webhook requests.", default="")
    Events: list[str] = option(
        "Events to send: delivered, suppressed, delayed, failed, relayed, expanded, canceled, unrecognized. Default all.", factory=list
    )


@dataclass
class IncomingWebhook:
    URL: str = required("URL that webhooks for incoming SMTP deliveries are POSTed to.")
    Authorization: str = option("Value for the Authorization header of webhook requests.", default="")


@dataclass
class SubjectPass:
    Period: Duration = required("How long a generated pass token stays valid, e.g. 12h.", default=Duration(0))


@dataclass
class AutomaticJunkFlags:
    Enabled: bool = required(
        "Set $Junk/$NotJunk on messages by the mailbox they are delivered, moved or copied to. Mailbox names are lower-cased "
        "and tried against junk, neutral and not-junk expressions in that order; with two set, the third matches the rest.",
        default=False,
    )
    JunkMailboxRegexp: str = option("E.g. ^(junk|spam).", default="")
    NeutralMailboxRegexp: str = option("E.g. ^(inbox|introbox|neutral|postmaster|dmarc|tlsrpt|rejects).", default="")
    NotJunkMailboxRegexp: str = option("E.g. .* or empty.", default="")


@dataclass
class JunkParams:
    Onegrams: bool = option("Rank single words.", default=False)
    Twograms: bool = option("Rank pairs of consecutive words.", default=False)
    Threegrams: bool = option("Rank triples of consecutive words.", default=False)
    MaxPower: float = required("Cap on how far a word's score may move from 0.5, e.g. 0.01.", default=0.0)
    TopWords: int = required("Number of most telling words used for the score, e.g. 10.", default=0)
    IgnoreWords: float = option("Ignore words whose score is within this distance of 0.5, e.g. 0.1.", default=0.0)
    RareWords: int = option("Words seen fewer times than this count less, e.g. 2.", default=0)


@dataclass
class JunkFilter:
    Threshold: float = required("Spam probability (0 to 1) above which messages are rejected, e.g. 0.95.", default=0.0)
    Params: JunkParams = required(factory=JunkParams)


@dataclass
class Account:
    OutgoingWebhook: OutgoingWebhook | None = option("Webhooks for events of outgoing deliveries.")
    IncomingWebhook: IncomingWebhook | None = option("Webhooks for incoming deliveries over SMTP.")
    FromIDLoginAddresses: list[str] = option(
        "Login addresses for which outgoing mail gets a unique id after the catchall separator in MAIL FROM, so bounces can "
        "be matched to the message and recipient. Needs a catchall separator on the domain.",
        factory=list,
    )
    KeepRetiredMessagePeriod: Duration = option(
        "How long delivered or failed messages stay in the queue's history, e.g. 168h.", default=Duration(0)
    )
    KeepRetiredWebhookPeriod: Duration = option("How long sent or failed webhooks stay in history, e.g. 168h.", default=Duration(0))
    LoginDisabled: str = option("When set, logins are refused with this message; incoming mail is still delivered.", default="")
    Domain: str = required("Deprecated: domain added to destinations that are only a local part.", default="")
    Description: str = option("Free-form description.", default="")
    FullName: str = option("Name used in From when composing in webmail; destinations can override it.", default="")
    Destinations: dict[str, Destination] = option(
        "Addresses of the account (IDNA domains in UTF-8); each can log in. '@domain' is a catchall for the domain.", factory=dict
    )
    SubjectPass: SubjectPass = option(
        "When set, messages that look weakly like spam are rejected with a token to put in the subject on retry, which then passes.",
        factory=SubjectPass,
    )
    QuotaMessageSize: int = option(
        "Limit on the total size of message files in bytes; overrides the global default; negative for no limit.", default=0
    )
    RejectsMailbox: str = option(
        "Mailbox that temporarily keeps copies of rejected spam, to look into when mail seems missing. Cleaned automatically.", default=""
    )
    KeepRejects: bool = option("Do not clean up the rejects mailbox automatically.", default=False)
    Introbox: str = option(
        "Mailbox for messages to Inbox from first-time senders; moving them out marks the sender as not junk. Must differ from Inbox and rejects.",
        default="",
    )
    AutomaticJunkFlags: AutomaticJunkFlags = option("Automatic junk flags by mailbox name.", factory=AutomaticJunkFlags)
    JunkFilter: JunkFilter | None = option("Content-based (Bayesian) junk filter trained on the junk flags of messages.")
    MaxOutgoingMessagesPerDay: int = option("Outgoing messages allowed per 24 hours, limiting damage of a compromised account. Default 1000.", default=0)
    MaxFirstTimeRecipientsPerDay: int = option("First-time recipients allowed per 24 hours. Default 200.", default=0)
    NoFirstTimeSenderDelay: bool = option("Do not delay incoming deliveries from first-time senders.", default=False)
    NoCustomPassword: bool = option("The user may only set randomly generated passwords; the admin may set any.", default=False)
    IMAPCapabilitiesDisabled: list[str] = option("IMAP capabilities (upper case) not offered to this account after login.", factory=list)
    Routes: list[Route] = option("Routes for outgoing mail of this account, tried before domain and global routes.", factory=list)
    # Derived.
    DNSDomain: Any = derived()


@dataclass
class WebStatic:
    StripPrefix: str = option("Prefix removed from the request path before it maps to a file.", default="")
    Root: str = required("Directory with the files; relative to mox's working directory.")
    ListFiles: bool = option("List directories that have no index.html (otherwise 403).", default=False)
    ContinueNotFound: bool = option("For a missing file, try the next handler instead of answering 404.", default=False)
    ResponseHeaders: dict[str, str] = option("Headers added to responses.", factory=dict)


@dataclass
class WebRedirect:
    BaseURL: str = option("URL to redirect to; its path is replaced by the request's (or by ReplacePath).", default="")
    OrigPathRegexp: str = option("Regular expression for the request path; 404 when it does not match.", default="")
    ReplacePath: str = option("Replacement path, with $1 and so on for submatches of OrigPathRegexp.", default="")
    StatusCode: int = option("Redirect status code; default 308.", default=0)


@dataclass
class WebForward:
    StripPath: bool = option("Remove the matched path before forwarding.", default=False)
    URL: str = required("URL of the backend, e.g. http://127.0.0.1:8123/base.")
    ResponseHeaders: dict[str, str] = option("Headers added to responses.", factory=dict)


@dataclass
class WebInternal:
    BasePath: str = required("Path the internal service is served under, e.g. /webmail/.")
    Service: str = required("One of admin, account, webmail, webapi.")


@dataclass
class WebHandler:
    LogName: str = option("Name in logs and metrics.", default="")
    Domain: str = required("Host the request is for; with PathRegexp decides whether this handler matches.")
    PathRegexp: str = required("Regular expression for the request path; must start with ^.")
    DontRedirectPlainHTTP: bool = option("Do not redirect plain HTTP requests to HTTPS.", default=False)
    Compress: bool = option("Gzip compressible responses when the client accepts it.", default=False)
    WebStatic: WebStatic | None = option("Serve static files.")
    WebRedirect: WebRedirect | None = option("Redirect requests.")
    WebForward: WebForward | None = option("Forward requests to another web server (reverse proxy).")
    WebInternal: WebInternal | None = option("Pass requests to an internal service such as webmail.")


@dataclass
class Dynamic:
    Domains: dict[str, Domain] = required("Domains that mail is accepted for; IDNA names in UTF-8.", factory=dict)
    Accounts: dict[str, Account] = required(
        "Accounts by name (not an email address), each with a password, addresses and its own message store.", factory=dict
    )
    WebDomainRedirects: dict[str, str] = option("Redirect all requests for one host (key) to another (value), over HTTPS.", factory=dict)
    WebHandlers: list[WebHandler] = option(
        "Web server request handlers, tried in order after the built-in ones (ACME, autoconfig, MTA-STS) and before admin, account, webmail and webapi.",
        factory=list,
    )
    Routes: list[Route] = option("Global routes for outgoing mail, tried after account and domain routes.", factory=list)
    MonitorDNSBLs: list[str] = option("DNS block lists our sending IPs are checked against, without using them for incoming mail.", factory=list)


STATIC_HEADER = (
    "mox.conf: static configuration of moxmail (upstream mox's format, 'sconf').\n"
    "Indent with tabs. Comments go on their own lines. Values are not quoted or escaped.\n"
    "Changes take effect after a restart."
)

DYNAMIC_HEADER = (
    "domains.conf: domains and accounts of moxmail (upstream mox's format, 'sconf').\n"
    "Indent with tabs. Comments go on their own lines. Values are not quoted or escaped.\n"
    "The server reloads this file when it changes; admin changes rewrite it."
)
