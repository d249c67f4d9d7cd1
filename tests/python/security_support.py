"""Test PKI and secured brokers for the security tests: a CA, server and client certificates made with
the `openssl` command line (Debian's), and a broker whose listener speaks SSL, SASL_SSL or
SASL_PLAINTEXT, with users added through `logpipe users add` before it starts."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

from support import HOST, Broker, toml_value


def openssl(*args: str, cwd: Path) -> None:
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{p.stderr}")


class Pki:
    """A throw-away CA under `dir`, and certificates it (or another CA) signs. EC P-256 keys: fast."""

    def __init__(self, dir: Path, name: str = "ca"):
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.ca = dir / f"{name}.pem"
        self.ca_key = dir / f"{name}.key"
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(self.ca_key), "-out", str(self.ca), "-days", "2", "-subj", f"/CN=logpipe test {name}",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=dir)

    def issue(self, name: str, subject: str, server: bool) -> tuple[Path, Path]:
        """(certificate, key) PEM files for `subject` (e.g. `/CN=agent-1/O=logpipe`)."""
        key, csr, cert, ext = (self.dir / f"{name}.{s}" for s in ("key", "csr", "pem", "ext"))
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
                "-out", str(csr), "-subj", subject, cwd=self.dir)
        usage = "serverAuth" if server else "clientAuth"
        lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
                 f"extendedKeyUsage={usage}"]
        if server:
            lines.append(f"subjectAltName=IP:{HOST},DNS:localhost")
        ext.write_text("\n".join(lines) + "\n")
        openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.ca_key), "-CAcreateserial",
                "-out", str(cert), "-days", "2", "-extfile", str(ext), cwd=self.dir)
        return cert, key


    def issue_expired(self, name: str, subject: str, server: bool) -> tuple[Path, Path]:
        """Like `issue`, but valid only on 2020-01-01 (signed with `openssl ca`, which takes dates)."""
        key, csr, cert, ext, cnf = (self.dir / f"{name}.{s}" for s in ("key", "csr", "pem", "ext", "cnf"))
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
                "-out", str(csr), "-subj", subject, cwd=self.dir)
        usage = "serverAuth" if server else "clientAuth"
        lines = ["basicConstraints=CA:FALSE", f"extendedKeyUsage={usage}"]
        if server:
            lines.append(f"subjectAltName=IP:{HOST},DNS:localhost")
        ext.write_text("\n".join(lines) + "\n")
        db = self.dir / f"{name}.db"
        db.mkdir(exist_ok=True)
        (db / "index.txt").write_text("")
        (db / "serial").write_text("1000\n")
        cnf.write_text(f"[ca]\ndefault_ca = d\n[d]\ndatabase = {db / 'index.txt'}\nserial = {db / 'serial'}\n"
                       f"new_certs_dir = {db}\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n")
        openssl("ca", "-batch", "-config", str(cnf), "-cert", str(self.ca), "-keyfile", str(self.ca_key),
                "-in", str(csr), "-out", str(cert), "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
                "-extfile", str(ext), "-notext", cwd=self.dir)
        return cert, key


class SecureBroker(Broker):
    """A broker whose one listener uses `protocol` (SSL, SASL_SSL, SASL_PLAINTEXT, PLAINTEXT)."""

    def __init__(self, binary: Path, workdir: Path, protocol: str, overrides: Optional[dict] = None):
        super().__init__(binary, workdir, overrides)
        self.protocol = protocol

    def write_config(self, port: int) -> None:
        lines = ["[broker]", f"listeners = {toml_value([f'{self.protocol}://{HOST}:{port}'])}"]
        lines += [f"{k} = {toml_value(v)}" for k, v in self.settings.items() if v is not None]
        self.config_path.write_text("\n".join(lines) + "\n")

    def add_user(self, name: str, password: str, mechanism: str = "SCRAM-SHA-512") -> str:
        """`logpipe users add` against this broker's config (works before the first start)."""
        if not self.config_path.exists():
            self.write_config(0)
        p = subprocess.run([str(self.binary), "users", "add", name, "--mechanism", mechanism, "--password-stdin",
                            "-c", str(self.config_path)], input=password + "\n", capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout
