# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL backups the deployment guide's way (``pg_dump --format=custom`` every 4 hours), made verifiable.

``backup`` dumps a database with the server's own ``pg_dump``, stores it in S3 with its SHA-256 (object
metadata and a ``<key>.sha256`` file in ``sha256sum`` format); ``verify`` downloads a dump, checks the
checksum and the archive's table of contents, restores it into a scratch database with ``pg_restore``,
runs a check query there and drops the scratch database again.

The PostgreSQL client programs (pg_dump, pg_restore, psql) are used; the password goes through the
environment (PGPASSWORD), never the command line.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time

from ansible_collections.machinenativeops.platform.plugins.module_utils.backup_verify import check

PG_ARG_SPEC = dict(
    login_host=dict(type='str', default='localhost', aliases=['host']),
    login_port=dict(type='int', default=5432, aliases=['port']),
    login_user=dict(type='str', default='postgres', aliases=['user']),
    login_password=dict(type='str', no_log=True, aliases=['password']),
    ssl_mode=dict(type='str', default='prefer', choices=['allow', 'disable', 'prefer', 'require', 'verify-ca', 'verify-full']),
    ca_cert=dict(type='path', aliases=['ssl_rootcert']),
    maintenance_db=dict(type='str', default='postgres'),
    bindir=dict(type='path'),
)

DEFAULT_CHECK_QUERY = ("SELECT count(*) FROM pg_catalog.pg_tables "
                       "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
_IDENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_$-]{0,62}$')
_STAMP = '%Y%m%d-%H%M%S'


class PgBackupError(Exception):
    """A pg_dump / pg_restore / psql run or a step around it failed; the message names what and why."""


def valid_identifier(name, what='database'):
    if not name or not _IDENT.match(name):
        raise PgBackupError('invalid %s name %r: letters, digits, _ $ - only, at most 63 characters, not starting with a digit' % (what, name))
    return name


def quote_ident(name):
    return '"%s"' % valid_identifier(name).replace('"', '""')


def find_bindir(bindir=None):
    """The directory holding pg_dump/pg_restore/psql: ``bindir``, else the newest /usr/lib/postgresql/*/bin, else PATH."""
    if bindir:
        if not os.path.exists(os.path.join(bindir, 'pg_dump')):
            raise PgBackupError('pg_dump not found in bindir %s' % bindir)
        return bindir
    candidates = sorted(glob.glob('/usr/lib/postgresql/*/bin'), key=lambda p: int(re.sub(r'\D', '', p.split('/')[-2]) or 0), reverse=True)
    for candidate in candidates:
        if os.path.exists(os.path.join(candidate, 'pg_dump')):
            return candidate
    found = shutil.which('pg_dump')
    if found:
        return os.path.dirname(found)
    raise PgBackupError('pg_dump not found: install the PostgreSQL client programs or give bindir')


def connection_env(params, database=None):
    """libpq environment for the connection options (the password is only ever here)."""
    env = dict(os.environ)
    env.update({'PGHOST': params.get('login_host') or 'localhost', 'PGPORT': str(params.get('login_port') or 5432),
                'PGUSER': params.get('login_user') or 'postgres', 'PGSSLMODE': params.get('ssl_mode') or 'prefer',
                'PGCONNECT_TIMEOUT': '10', 'PGAPPNAME': 'machinenativeops.platform.pg_backup'})
    if params.get('login_password'):
        env['PGPASSWORD'] = params['login_password']
    else:
        env.pop('PGPASSWORD', None)
    if params.get('ca_cert'):
        env['PGSSLROOTCERT'] = params['ca_cert']
    if database:
        env['PGDATABASE'] = database
    return env


def run(argv, env, what, timeout=3600):
    """Run a client program; PgBackupError with its stderr when it fails."""
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except OSError as exc:
        raise PgBackupError('%s: cannot run %s: %s' % (what, argv[0], exc)) from None
    except subprocess.TimeoutExpired:
        raise PgBackupError('%s: %s did not finish within %ss' % (what, os.path.basename(argv[0]), timeout)) from None
    if proc.returncode != 0:
        raise PgBackupError('%s failed (%s exit %d): %s' % (what, os.path.basename(argv[0]), proc.returncode,
                                                            (proc.stderr or proc.stdout).strip()[-2000:]))
    return proc.stdout


def psql(bindir, params, database, sql, what, timeout=600):  # noqa: PLR0917
    """Run one SQL statement with psql; returns the unaligned, tuples-only output."""
    argv = [os.path.join(bindir, 'psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', database, '-c', sql]
    return run(argv, connection_env(params, database), what, timeout).strip()


def sha256_file(path, chunk=1024 * 1024):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def dump_prefix(prefix, database):
    prefix = (prefix or '').strip('/')
    return '%s/%s/' % (prefix, database) if prefix else '%s/' % database


def dump_key(prefix, database, when):
    return '%s%s-%s.dump' % (dump_prefix(prefix, database), database, when.strftime(_STAMP))


def dump_time(key):
    """The UTC time encoded in a dump key, or None."""
    match = re.search(r'-(\d{8}-\d{6})\.dump$', key)
    if not match:
        return None
    return datetime.datetime.strptime(match.group(1), _STAMP).replace(tzinfo=datetime.timezone.utc)


def list_dumps(store, prefix, database):
    """The database's dumps in the bucket, oldest first: dicts with key, size, time (ISO), checksum_key."""
    out = []
    for obj in store.list(dump_prefix(prefix, database)):
        when = dump_time(obj['key'])
        if when is None:
            continue
        out.append({'key': obj['key'], 'size': obj['size'], 'time': when.isoformat(), 'checksum_key': obj['key'] + '.sha256'})
    out.sort(key=lambda d: d['time'])
    return out


def plan_backup(dumps, now, max_age=None):
    """Whether a new dump is due: ``{"due": bool, "newest": dump|None, "reason"}``."""
    newest = dumps[-1] if dumps else None
    if newest is None:
        return {'due': True, 'newest': None, 'reason': 'no dump of the database exists yet'}
    if max_age is None:
        return {'due': True, 'newest': newest, 'reason': 'a dump is taken on every run (no max_age)'}
    age = (now - datetime.datetime.fromisoformat(newest['time'])).total_seconds()
    if age < max_age:
        return {'due': False, 'newest': newest, 'reason': 'the newest dump %s is %ds old, younger than max_age %ds' % (newest['key'], age, max_age)}
    return {'due': True, 'newest': newest, 'reason': 'the newest dump %s is %ds old, max_age is %ds' % (newest['key'], age, max_age)}


def backup(params, store, database, prefix, now=None, timeout=3600, extra_args=None):  # noqa: PLR0917
    """pg_dump --format=custom ``database`` and upload the dump and its checksum; returns what was stored."""
    valid_identifier(database)
    bindir = find_bindir(params.get('bindir'))
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = dump_key(prefix, database, now)
    workdir = tempfile.mkdtemp(prefix='pg_backup-')
    try:
        path = os.path.join(workdir, os.path.basename(key))
        t0 = time.monotonic()
        argv = [os.path.join(bindir, 'pg_dump'), '--format=custom', '--no-password', '--file', path, *list(extra_args or []), database]
        run(argv, connection_env(params, database), 'pg_dump of database %s' % database, timeout)
        dump_seconds = time.monotonic() - t0
        digest = sha256_file(path)
        size = os.path.getsize(path)
        metadata = {'sha256': digest, 'database': database, 'created': now.strftime('%Y-%m-%dT%H:%M:%SZ'), 'format': 'custom'}
        store.upload_file(path, key, metadata)
        store.put(key + '.sha256', ('%s  %s\n' % (digest, os.path.basename(key))).encode(), content_type='text/plain')
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {'key': key, 'checksum_key': key + '.sha256', 'sha256': digest, 'size': size, 'database': database,
            'time': now.isoformat(), 'dump_seconds': round(dump_seconds, 3), 'bucket': store.bucket}


def toc_tables(toc_text):
    """TABLE entries of ``pg_restore --list`` output as ``schema.table``."""
    tables = []
    for line in toc_text.splitlines():
        if line.startswith(';') or not line.strip():
            continue
        match = re.match(r'^\d+;\s+\d+\s+\d+\s+TABLE\s+(?!DATA\s)(\S+)\s+(\S+)\s', line)
        if match:
            tables.append('%s.%s' % (match.group(1), match.group(2)))
    return tables


def evaluate_check(result, expect=None, minimum=None):
    """Whether the check query's first value meets ``expect`` (exact text) or ``minimum`` (number)."""
    if expect is not None:
        return result == str(expect), 'check query returned %r, expected %r' % (result, str(expect))
    if minimum is not None:
        try:
            value = float(result)
        except (TypeError, ValueError):
            return False, 'check query returned %r, not a number to compare with the minimum %s' % (result, minimum)
        return value >= minimum, 'check query returned %s, minimum %s' % (result, minimum)
    return bool(result), 'check query returned %r' % result


def verify(params, store, key, scratch_database, check_query=None, expect=None, minimum=1, keep_scratch=False, timeout=3600,  # noqa: PLR0917
           restore=True):
    """Verify the dump at ``key``; returns the report (``passed``, ``checks``, the check query's result, timings)."""
    valid_identifier(scratch_database, 'scratch database')
    bindir = find_bindir(params.get('bindir'))
    t0 = time.monotonic()
    checks = []
    report = {'key': key, 'bucket': store.bucket, 'checks': checks, 'scratch_database': scratch_database, 'check_result': None}
    head = store.head(key)
    if head is None:
        checks.append(check('dump_present', False, 's3://%s/%s does not exist' % (store.bucket, key)))
        return _finish(report, t0)
    checks.append(check('dump_present', True, 'dump of %d bytes present' % head['size']))
    report['size'] = head['size']
    workdir = tempfile.mkdtemp(prefix='pg_verify-')
    created = False
    try:
        path = os.path.join(workdir, 'dump')
        store.download_file(key, path)
        digest = sha256_file(path)
        report['sha256'] = digest
        recorded = (head['metadata'] or {}).get('sha256')
        sidecar = store.get(key + '.sha256')
        sidecar_digest = sidecar.decode('utf-8', 'replace').split()[0] if sidecar else None
        wanted = sidecar_digest or recorded
        if wanted is None:
            checks.append(check('checksum', False, 'no recorded SHA-256 (neither object metadata nor %s.sha256)' % key))
        else:
            agree = (recorded is None or recorded == wanted)
            checks.append(check('checksum', digest == wanted and agree, 'SHA-256 %s %s the recorded %s%s' % (
                digest, 'matches' if digest == wanted else 'differs from', wanted,
                '' if agree else ' (object metadata says %s)' % recorded)))
        try:
            toc = run([os.path.join(bindir, 'pg_restore'), '--list', path], connection_env(params), 'pg_restore --list', timeout)
            tables = toc_tables(toc)
            report['tables_in_dump'] = len(tables)
            checks.append(check('archive_readable', True, 'custom-format archive with %d TOC entries, %d tables'
                                % (len([x for x in toc.splitlines() if x and not x.startswith(';')]), len(tables))))
        except PgBackupError as exc:
            checks.append(check('archive_readable', False, str(exc)))
            return _finish(report, t0)
        if not restore:
            report['restore_skipped'] = True
            return _finish(report, t0)
        maintenance = params.get('maintenance_db') or 'postgres'
        try:
            psql(bindir, params, maintenance, 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % quote_ident(scratch_database), 'drop old scratch database')
            psql(bindir, params, maintenance, 'CREATE DATABASE %s' % quote_ident(scratch_database), 'create scratch database %s' % scratch_database)
        except PgBackupError as exc:
            checks.append(check('scratch_database', False, '%s (the login needs CREATEDB to verify a dump)' % exc))
            return _finish(report, t0)
        created = True
        t1 = time.monotonic()
        try:
            run([os.path.join(bindir, 'pg_restore'), '--no-owner', '--no-acl', '--exit-on-error', '--no-password', '-d', scratch_database, path],
                connection_env(params, scratch_database), 'pg_restore into %s' % scratch_database, timeout)
            checks.append(check('restore', True, 'pg_restore into %s succeeded' % scratch_database))
        except PgBackupError as exc:
            checks.append(check('restore', False, str(exc)))
            return _finish(report, t0)
        report['restore_seconds'] = round(time.monotonic() - t1, 3)
        restored_tables = int(psql(bindir, params, scratch_database, DEFAULT_CHECK_QUERY, 'count restored tables') or 0)
        checks.append(check('tables_restored', restored_tables == len(tables), '%d tables restored, the dump lists %d'
                            % (restored_tables, len(tables))))
        try:
            result = psql(bindir, params, scratch_database, check_query or DEFAULT_CHECK_QUERY, 'check query')
            first = result.splitlines()[0] if result else ''
            report['check_result'] = first
            ok, reason = evaluate_check(first, expect, minimum)
            checks.append(check('check_query', ok, reason))
        except PgBackupError as exc:
            checks.append(check('check_query', False, str(exc)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if created and not keep_scratch:
            try:
                psql(bindir, params, params.get('maintenance_db') or 'postgres',
                     'DROP DATABASE IF EXISTS %s WITH (FORCE)' % quote_ident(scratch_database), 'drop scratch database')
                report['scratch_dropped'] = True
            except PgBackupError as exc:
                report['scratch_dropped'] = False
                checks.append(check('cleanup', False, str(exc)))
    return _finish(report, t0)


def _finish(report, t0):
    report['passed'] = bool(report['checks']) and all(c['passed'] for c in report['checks'])
    report['failed_checks'] = [c['name'] for c in report['checks'] if not c['passed']]
    report['seconds'] = round(time.monotonic() - t0, 3)
    return report
