"""Debian's nginx as the TLS and authentication front of an Elasticsearch (the stand-in or OpenSearch),
as a secured cluster looks to its clients: HTTPS with a certificate from a test CA, and either basic
auth (`auth_basic`, an htpasswd file made with `openssl passwd`) or API keys (the `Authorization:
ApiKey ...` header checked with a `map`). Refusals carry Elasticsearch's security_exception bodies."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from appliance_support import free_port
from support import HOST, wait_until

UNAUTHENTICATED = ('{"error":{"type":"security_exception","reason":"unable to authenticate with provided '
                   'credentials"},"status":401}')
FORBIDDEN = ('{"error":{"type":"security_exception","reason":"action [indices:admin/index_template/put] is '
             'unauthorized for API key"},"status":403}')


def nginx_binary() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if path is None:
        raise RuntimeError("nginx is missing; scripts/test.sh installs Debian's nginx-light")
    return path


class NginxProxy:
    """Two HTTPS servers in front of `upstream`: `basic_url` (auth_basic, `user`:`password`) and
    `api_key_url` (accepts `api_key`, answers 403 to `readonly_key`, 401 to anything else)."""

    def __init__(self, workdir: Path, upstream: str, cert_chain: Path, key: Path, *, user: str, password: str,
                 api_key: str, readonly_key: str):
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        hashed = subprocess.run(["openssl", "passwd", "-apr1", "-stdin"], input=password, capture_output=True,
                                text=True, check=True).stdout.strip()
        (workdir / "htpasswd").write_text(f"{user}:{hashed}\n")
        self.basic_port, self.api_key_port = free_port(), free_port()
        self.basic_url = f"https://{HOST}:{self.basic_port}"
        self.api_key_url = f"https://{HOST}:{self.api_key_port}"
        # Workers run as root only when nginx does: the files live in a private temp dir.
        user_line = "user root;" if os.geteuid() == 0 else ""
        tls = f"ssl_certificate {cert_chain};\n        ssl_certificate_key {key};"
        temp = "\n    ".join(f"{kind}_temp_path {workdir / kind};" for kind in
                             ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (workdir / "nginx.conf").write_text(f"""{user_line}
worker_processes 1;
daemon off;
pid {workdir / 'nginx.pid'};
error_log {workdir / 'error.log'} warn;
events {{ worker_connections 128; }}
http {{
    access_log {workdir / 'access.log'};
    {temp}
    client_max_body_size 200m;
    map_hash_bucket_size 128;
    map $http_authorization $api_key_access {{
        "ApiKey {api_key}" ok;
        "ApiKey {readonly_key}" readonly;
        default none;
    }}
    server {{
        listen {HOST}:{self.basic_port} ssl;
        {tls}
        auth_basic "elasticsearch";
        auth_basic_user_file {workdir / 'htpasswd'};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{
        listen {HOST}:{self.api_key_port} ssl;
        {tls}
        default_type application/json;
        location / {{
            if ($api_key_access = none) {{ return 401 '{UNAUTHENTICATED}'; }}
            if ($api_key_access = readonly) {{ return 403 '{FORBIDDEN}'; }}
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
        # `nginx -t` first: a config error fails at once, with nginx's own line.
        checked = subprocess.run([nginx_binary(), "-t", "-p", str(workdir), "-c", str(workdir / "nginx.conf")],
                                 capture_output=True, text=True, timeout=30)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx refused its config:\n{checked.stderr}")
        self.proc = subprocess.Popen([nginx_binary(), "-p", str(workdir), "-c", str(workdir / "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=open(workdir / "stderr.log", "wb"))
        wait_until(self._listening, 30, "nginx to listen on both ports")

    def _listening(self) -> bool:
        import socket

        if self.proc.poll() is not None:
            raise RuntimeError(f"nginx exited {self.proc.returncode}:\n{self.log()}")
        for port in (self.basic_port, self.api_key_port):
            try:
                socket.create_connection((HOST, port), timeout=1).close()
            except OSError:
                return False
        return True

    def log(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            p = self.dir / name
            if p.exists():
                parts.append(p.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def statuses(self) -> list[int]:
        """HTTP statuses nginx answered, in order (from its access log)."""
        p = self.dir / "access.log"
        if not p.exists():
            return []
        out = []
        for line in p.read_text(errors="replace").splitlines():
            fields = line.split('"')
            if len(fields) > 2 and fields[2].split():
                out.append(int(fields[2].split()[0]))
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
