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
    """libpq environment for the connection options (the password is only ever here), added to the process's own."""
    env = {'PGHOST': params.get('login_host') or 'localhost', 'PGPORT': str(params.get('login_port') or 5432),
           'PGUSER': params.get('login_user') or 'postgres', 'PGSSLMODE': params.get('ssl_mode') or 'prefer',
           'PGCONNECT_TIMEOUT': '10', 'PGAPPNAME': 'machinenativeops.platform.pg_backup'}
    if params.get('login_password'):
        env['PGPASSWORD'] = params['login_password']
    if params.get('ca_cert'):
        env['PGSSLROOTCERT'] = params['ca_cert']
    if database:
        env['PGDATABASE'] = database
    return env


class Pg:
    """The client programs of one server: ``runner(argv, env, timeout) -> (rc, stdout, stderr)`` runs them.

    The module passes a runner built on ``AnsibleModule.run_command``; tests pass one of their own. ``env`` holds only
    the libpq variables, to be added to the process environment.
    """

    def __init__(self, params, runner, bindir=None):
        self.params = params
        self.runner = runner
        self.bindir = bindir or find_bindir(params.get('bindir'))
        self.maintenance_db = params.get('maintenance_db') or 'postgres'

    def program(self, name):
        return os.path.join(self.bindir, name)

    def run(self, argv, what, database=None, timeout=3600):
        """Run a client program; PgBackupError with its stderr when it fails."""
        rc, out, err = self.runner(argv, connection_env(self.params, database), timeout)
        if rc == TIMEOUT_RC:
            raise PgBackupError('%s: %s did not finish within %ss' % (what, os.path.basename(argv[0]), timeout))
        if rc != 0:
            raise PgBackupError('%s failed (%s exit %d): %s' % (what, os.path.basename(argv[0]), rc, ((err or out) or '').strip()[-2000:]))
        return out

    def psql(self, database, sql, what, timeout=600):
        """Run SQL with psql (several statements run as one transaction); returns the unaligned, tuples-only output."""
        argv = [self.program('psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', database, '-c', sql]
        return self.run(argv, what, database, timeout).strip()

    def admin(self, sql, what, timeout=600):
        """SQL in the maintenance database."""
        return self.psql(self.maintenance_db, sql, what, timeout)

    def database_state(self, name):
        """``{"exists", "owner", "comment"}`` of a database."""
        out = self.admin("SELECT pg_get_userbyid(d.datdba), coalesce(shobj_description(d.oid, 'pg_database'), '') "
                         "FROM pg_database d WHERE d.datname = %s" % quote_literal(name), 'read database %s' % name)
        if not out:
            return {'exists': False, 'owner': None, 'comment': None}
        owner, _sep, comment = out.partition('|')
        return {'exists': True, 'owner': owner, 'comment': comment}

    def table_count(self, database):
        return int(self.psql(database, DEFAULT_CHECK_QUERY, 'count the tables of %s' % database) or 0)


TIMEOUT_RC = 124  # the exit code of timeout(1), which the module's runner uses


def quote_literal(text):
    return "'%s'" % str(text).replace("'", "''")


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


def backup(pg, store, database, prefix, now=None, timeout=3600, extra_args=None):  # noqa: PLR0917
    """pg_dump --format=custom ``database`` and upload the dump and its checksum; returns what was stored."""
    valid_identifier(database)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = dump_key(prefix, database, now)
    workdir = tempfile.mkdtemp(prefix='pg_backup-')
    try:
        path = os.path.join(workdir, os.path.basename(key))
        t0 = time.monotonic()
        argv = [pg.program('pg_dump'), '--format=custom', '--no-password', '--file', path, *list(extra_args or []), database]
        pg.run(argv, 'pg_dump of database %s' % database, database, timeout)
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


SCRATCH_MARK = 'machinenativeops.platform.pg_backup scratch database'
WORK_MARK = 'machinenativeops.platform.pg_backup restore in progress'
RESTORED_MARK = 'machinenativeops.platform.pg_backup restored'


def suffixed(name, suffix):
    """``name`` + ``suffix`` within PostgreSQL's 63 characters (the name is shortened, the suffix kept)."""
    return name[:63 - len(suffix)] + suffix


def refuse_protected(name, protected, what='scratch database'):
    """PgBackupError when ``name`` is one of the databases this run backs up or restores (or the maintenance database)."""
    for other in protected:
        if other and name == other:
            raise PgBackupError('refusing to use database %s as the %s: it is a database this run was asked to back up or '
                                'restore (or the maintenance database), and the %s is dropped and recreated' % (name, what, what))


def recorded_sha256(store, key, head):
    """The SHA-256 recorded for a dump: its ``.sha256`` file, else its object metadata (None when neither)."""
    sidecar = store.get(key + '.sha256')
    sidecar_digest = sidecar.decode('utf-8', 'replace').split()[0] if sidecar and sidecar.split() else None
    return sidecar_digest, (head.get('metadata') or {}).get('sha256')


def fetch_and_check(pg, store, key, head, path, checks, report, timeout):  # noqa: PLR0917
    """Download ``key`` to ``path``, check its SHA-256 and table of contents; appends to ``checks``.

    Returns the dump's tables, or None when a check failed.
    """
    store.download_file(key, path)
    digest = sha256_file(path)
    report['sha256'] = digest
    sidecar_digest, recorded = recorded_sha256(store, key, head)
    wanted = sidecar_digest or recorded
    if wanted is None:
        checks.append(check('checksum', False, 'no recorded SHA-256 (neither object metadata nor %s.sha256)' % key))
    else:
        agree = (recorded is None or recorded == wanted)
        checks.append(check('checksum', digest == wanted and agree, 'SHA-256 %s %s the recorded %s%s' % (
            digest, 'matches' if digest == wanted else 'differs from', wanted,
            '' if agree else ' (object metadata says %s)' % recorded)))
    try:
        toc = pg.run([pg.program('pg_restore'), '--list', path], 'pg_restore --list', None, timeout)
    except PgBackupError as exc:
        checks.append(check('archive_readable', False, str(exc)))
        return None
    tables = toc_tables(toc)
    report['tables_in_dump'] = len(tables)
    checks.append(check('archive_readable', True, 'custom-format archive with %d TOC entries, %d tables'
                        % (len([x for x in toc.splitlines() if x and not x.startswith(';')]), len(tables))))
    if not all(c['passed'] for c in checks):
        return None
    return tables


def check_restored(pg, database, tables, check_query, expect, minimum, checks, report):  # noqa: PLR0917
    """Table count against the dump's, then the check query, in ``database``; appends to ``checks``."""
    restored_tables = pg.table_count(database)
    checks.append(check('tables_restored', restored_tables == len(tables), '%d tables restored, the dump lists %d'
                        % (restored_tables, len(tables))))
    run_check_query(pg, database, check_query, expect, minimum, checks, report)


def verify(pg, store, key, scratch_database, check_query=None, expect=None, minimum=1, keep_scratch=False, timeout=3600,  # noqa: PLR0917
           restore=True, protected=()):
    """Verify the dump at ``key``; returns the report (``passed``, ``checks``, the check query's result, timings).

    ``protected``: databases the scratch database must not be (the database whose dump this is); the dump's own
    database (object metadata) and the maintenance database are added. An existing scratch database is only dropped when
    pg_backup created it (its comment says so).
    """
    valid_identifier(scratch_database, 'scratch database')
    protected = [*list(protected), pg.maintenance_db]
    refuse_protected(scratch_database, protected)
    t0 = time.monotonic()
    checks = []
    report = {'key': key, 'bucket': store.bucket, 'checks': checks, 'scratch_database': scratch_database, 'check_result': None}
    head = store.head(key)
    if head is None:
        checks.append(check('dump_present', False, 's3://%s/%s does not exist' % (store.bucket, key)))
        return _finish(report, t0)
    refuse_protected(scratch_database, [(head.get('metadata') or {}).get('database')])
    checks.append(check('dump_present', True, 'dump of %d bytes present' % head['size']))
    report['size'] = head['size']
    workdir = tempfile.mkdtemp(prefix='pg_verify-')
    created = False
    try:
        tables = fetch_and_check(pg, store, key, head, os.path.join(workdir, 'dump'), checks, report, timeout)
        if tables is None:
            return _finish(report, t0)
        if not restore:
            report['restore_skipped'] = True
            return _finish(report, t0)
        try:
            state = pg.database_state(scratch_database)
            if state['exists'] and not (state['comment'] or '').startswith(SCRATCH_MARK):
                checks.append(check('scratch_database', False, 'refusing to drop database %s: it exists and pg_backup did not create it '
                                    'as a scratch database (its comment is %r); choose another scratch_database'
                                    % (scratch_database, state['comment'] or '')))
                return _finish(report, t0)
            if state['exists']:
                pg.admin('DROP DATABASE %s WITH (FORCE)' % quote_ident(scratch_database), 'drop old scratch database')
            pg.admin('CREATE DATABASE %s' % quote_ident(scratch_database), 'create scratch database %s' % scratch_database)
            created = True
            pg.admin('COMMENT ON DATABASE %s IS %s' % (quote_ident(scratch_database), quote_literal('%s for %s' % (SCRATCH_MARK, key))),
                     'mark scratch database %s' % scratch_database)
        except PgBackupError as exc:
            checks.append(check('scratch_database', False, '%s (the login needs CREATEDB to verify a dump)' % exc))
            return _finish(report, t0)
        t1 = time.monotonic()
        try:
            pg.run([pg.program('pg_restore'), '--no-owner', '--no-acl', '--exit-on-error', '--no-password', '-d', scratch_database,
                    os.path.join(workdir, 'dump')], 'pg_restore into %s' % scratch_database, scratch_database, timeout)
            checks.append(check('restore', True, 'pg_restore into %s succeeded' % scratch_database))
        except PgBackupError as exc:
            checks.append(check('restore', False, str(exc)))
            return _finish(report, t0)
        report['restore_seconds'] = round(time.monotonic() - t1, 3)
        check_restored(pg, scratch_database, tables, check_query, expect, minimum, checks, report)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if created and not keep_scratch:
            try:
                pg.admin('DROP DATABASE IF EXISTS %s WITH (FORCE)' % quote_ident(scratch_database), 'drop scratch database')
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


# -- restore ---------------------------------------------------------------------------------------------------------
_ROLE_TOKEN = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_OWNER = re.compile(r'^(ALTER .+ OWNER TO )(%s)(;)$' % _ROLE_TOKEN)
_SESSION = re.compile(r'^(SET SESSION AUTHORIZATION )(%s)(;)$' % _ROLE_TOKEN)
_DEFAULT_FOR = re.compile(r'^(ALTER DEFAULT PRIVILEGES FOR ROLE )(%s)( .*)$' % _ROLE_TOKEN)
_GRANTEES = re.compile(r'^(%s(?:, %s)*)((?: WITH GRANT OPTION)?(?: GRANTED BY %s)?(?: CASCADE)?;)$' % (_ROLE_TOKEN, _ROLE_TOKEN, _ROLE_TOKEN))


def _map_role(token, mapping):
    name = token[1:-1].replace('""', '"') if token.startswith('"') else token
    if name in mapping:
        return '"%s"' % mapping[name].replace('"', '""')
    return token


def _map_role_list(text, mapping):
    return ', '.join(_map_role(t, mapping) for t in re.findall(_ROLE_TOKEN, text))


def map_roles_line(line, mapping):
    """One line of a pg_restore SQL script with the roles of ownership, GRANT/REVOKE and default privileges mapped."""
    for pattern in (_OWNER, _SESSION):
        match = pattern.match(line)
        if match:
            return match.group(1) + _map_role(match.group(2), mapping) + match.group(3)
    match = _DEFAULT_FOR.match(line)
    if match:
        line = match.group(1) + _map_role(match.group(2), mapping) + match.group(3)
        if ' GRANT ' not in line and ' REVOKE ' not in line:
            return line
    for verb, keyword in (('GRANT ', ' TO '), ('REVOKE ', ' FROM ')):
        if (line.startswith(verb) or (line.startswith('ALTER DEFAULT PRIVILEGES ') and (' %s' % verb) in line)) and keyword in line:
            head, sep, tail = line.rpartition(keyword)
            match = _GRANTEES.match(tail)
            if match:
                granted_by = match.group(2)
                by = re.search(r' GRANTED BY (%s)' % _ROLE_TOKEN, granted_by)
                if by:
                    granted_by = granted_by.replace(by.group(0), ' GRANTED BY ' + _map_role(by.group(1), mapping))
                return head + sep + _map_role_list(match.group(1), mapping) + granted_by
    return line


def map_roles_script(source, target, mapping):
    """Copy the SQL script ``source`` to ``target`` with ``mapping`` applied outside COPY data; returns the lines changed."""
    changed = 0
    in_copy = False
    with open(source, encoding='utf-8') as src, open(target, 'w', encoding='utf-8') as dst:
        for raw in src:
            line = raw.rstrip('\n')
            if in_copy:
                in_copy = line != '\\.'
            elif line.startswith('COPY ') and line.endswith(' FROM stdin;'):
                in_copy = True
            else:
                new = map_roles_line(line, mapping)
                if new != line:
                    changed += 1
                    line = new
            dst.write(line + ('\n' if raw.endswith('\n') else ''))
    return changed


def restore_marker(bucket, key, sha256):
    """The comment a restored database carries: which dump, with which checksum (a second run compares it)."""
    return '%s s3://%s/%s sha256=%s' % (RESTORED_MARK, bucket, key, sha256)


def restore_names(target, now):
    """The work database and the name the replaced database is kept under."""
    return suffixed(target, '_restoring'), suffixed(target, '_before_' + now.strftime('%Y%m%d%H%M%S'))


def plan_restore(key, target, target_state, working_state, marker, force, keep_owners=True, keep_acls=True, names=None,  # noqa: PLR0917
                 role_mapping=None):
    """What a restore of ``key`` into ``target`` does: ``{"action": none|restore|refuse, "reason", "steps"}``.

    ``target_state``: ``{"exists", "comment", "owner", "tables"}``; ``working_state``: ``{"exists", "comment"}`` of the
    work database; ``names``: (work database, name the replaced target is kept under).
    """
    working, before = names
    if target_state['exists'] and target_state.get('comment') == marker:
        return {'action': 'none', 'steps': [], 'reason': 'database %s was already restored from this dump (%s)' % (target, marker)}
    if working_state['exists'] and not (working_state.get('comment') or '').startswith(WORK_MARK):
        return {'action': 'refuse', 'steps': [], 'reason': (
            'refusing to restore dump %s into database %s: the work database %s exists and pg_backup did not create it '
            '(its comment is %r); rename or drop it first' % (key, target, working, working_state.get('comment') or ''))}
    tables = target_state.get('tables') or 0
    if target_state['exists'] and tables > 0 and not force:
        return {'action': 'refuse', 'steps': [], 'reason': (
            'refusing to restore dump %s into database %s: it exists and holds %d tables. With force=true the dump is restored '
            'into %s, checked, and swapped in; %s is kept as %s until you drop it' % (key, target, tables, working, target, before))}
    steps = []
    if working_state['exists']:
        steps.append('drop the work database %s left by an unfinished earlier restore' % working)
    owner = target_state.get('owner') if keep_owners and target_state['exists'] else None
    steps.append('create database %s%s' % (working, ' owned by %s (the owner of %s)' % (owner, target) if owner else ''))
    steps.append('pg_restore %s into %s (%s)' % (key, working, ', '.join([
        'owners kept' if keep_owners else 'objects owned by the login role',
        'GRANTs kept' if keep_acls else 'GRANTs left out'] + (
        ['roles mapped: %s' % ', '.join('%s -> %s' % kv for kv in sorted(role_mapping.items()))] if role_mapping else []))))
    steps.append('check %s: as many tables as the dump lists, then the check query; on failure drop %s, %s stays as it is'
                 % (working, working, target))
    if target_state['exists']:
        steps.append('close the connections to %s, then in one transaction rename %s to %s and %s to %s, and mark %s as restored'
                     % (target, target, before, working, target, target))
        steps.append('keep %s (the replaced database, %d tables) until you drop it' % (before, tables))
    else:
        steps.append('in one transaction rename %s to %s and mark it as restored' % (working, target))
    return {'action': 'restore', 'steps': steps, 'reason': 'database %s %s' % (target, (
        'does not exist' if not target_state['exists'] else
        'holds no tables' if not tables else 'holds %d tables and force=true' % tables))}


def restore(pg, store, key, target, force=False, keep_owners=True, keep_acls=True, check_query=None, expect=None, minimum=1,  # noqa: PLR0917
            timeout=3600, check_mode=False, now=None, protected=(), role_mapping=None):
    """Restore the dump at ``key`` into ``target`` next to it, check it, then swap it in; returns the report.

    Until the swap nothing of ``target`` is touched: any failure before it drops the work database and raises
    PgBackupError saying that ``target`` is unchanged. The swap is one transaction (both renames and the marker).
    ``report["changed"]`` says whether the database was (or, in check mode, would be) restored.
    """
    valid_identifier(target, 'target database')
    now = now or datetime.datetime.now(datetime.timezone.utc)
    working, before = restore_names(target, now)
    refuse_protected(target, [pg.maintenance_db], 'restore target')
    refuse_protected(working, [*list(protected), pg.maintenance_db], 'work database')
    t0 = time.monotonic()
    checks = []
    report = {'key': key, 'bucket': store.bucket, 'target': target, 'work_database': working, 'previous_database': None,
              'checks': checks, 'check_result': None, 'changed': False, 'steps': [], 'done': []}
    head = store.head(key)
    if head is None:
        raise PgBackupError('dump s3://%s/%s does not exist; nothing was changed' % (store.bucket, key))
    sidecar_digest, recorded = recorded_sha256(store, key, head)
    if not (sidecar_digest or recorded):
        raise PgBackupError('dump s3://%s/%s has no recorded SHA-256 (neither object metadata nor %s.sha256); nothing was changed'
                            % (store.bucket, key, key))
    marker = restore_marker(store.bucket, key, sidecar_digest or recorded)
    report['marker'] = marker
    target_state = pg.database_state(target)
    if target_state['exists']:
        target_state['tables'] = pg.table_count(target)
    plan = plan_restore(key, target, target_state, pg.database_state(working), marker, force, keep_owners, keep_acls, (working, before),
                        role_mapping)
    report.update(action=plan['action'], reason=plan['reason'], steps=plan['steps'], target_tables=target_state.get('tables'))
    if plan['action'] == 'refuse':
        raise PgBackupError(plan['reason'] + '; nothing was changed')
    if plan['action'] == 'none':
        run_check_query(pg, target, check_query, expect, minimum, checks, report)
        return _finish(report, t0)
    workdir = tempfile.mkdtemp(prefix='pg_restore-')
    path = os.path.join(workdir, 'dump')
    try:
        checks.append(check('dump_present', True, 'dump of %d bytes present' % head['size']))
        tables = fetch_and_check(pg, store, key, head, path, checks, report, timeout)
        if tables is None:
            failed = ['%s: %s' % (c['name'], c['reason']) for c in checks if not c['passed']]
            raise PgBackupError('dump %s failed its checks (%s); nothing was changed, database %s is untouched' % (key, '; '.join(failed), target))
        report['changed'] = True
        if check_mode:
            return _finish(report, t0)
        _restore_into_work_database(pg, key, target, target_state, working, path, tables, (keep_owners, keep_acls, role_mapping), timeout,
                                    (check_query, expect, minimum), report)
        _swap(pg, target, target_state, working, before, marker, report)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _finish(report, t0)


def run_check_query(pg, database, check_query, expect, minimum, checks, report):  # noqa: PLR0917
    """The check query in ``database`` (alone, for a database restored earlier: the dump is not downloaded
    again to count its tables); appends to ``checks``."""
    try:
        result = pg.psql(database, check_query or DEFAULT_CHECK_QUERY, 'check query')
        first = result.splitlines()[0] if result else ''
        report['check_result'] = first
        ok, reason = evaluate_check(first, expect, minimum)
        checks.append(check('check_query', ok, reason))
    except PgBackupError as exc:
        checks.append(check('check_query', False, str(exc)))


def _drop_work_database(pg, working, report):
    try:
        pg.admin('DROP DATABASE IF EXISTS %s WITH (FORCE)' % quote_ident(working), 'drop work database %s' % working)
        report['done'].append('dropped the work database %s' % working)
        return 'the work database %s was dropped' % working
    except PgBackupError as exc:
        return 'the work database %s could not be dropped (%s)' % (working, exc)


def _restore_into_work_database(pg, key, target, target_state, working, path, tables, how, timeout,  # noqa: PLR0917
                                check_args, report):
    checks = report['checks']
    created = False
    try:
        if pg.database_state(working)['exists']:
            pg.admin('DROP DATABASE %s WITH (FORCE)' % quote_ident(working), 'drop the work database %s of an earlier run' % working)
            report['done'].append('dropped the work database %s of an earlier run' % working)
        pg.admin('CREATE DATABASE %s' % quote_ident(working), 'create work database %s' % working)
        created = True
        pg.admin('COMMENT ON DATABASE %s IS %s' % (quote_ident(working), quote_literal('%s: %s into %s' % (WORK_MARK, key, target))),
                 'mark work database %s' % working)
        report['done'].append('created the work database %s' % working)
        keep_owners, keep_acls, role_mapping = how
        if keep_owners and target_state['exists'] and target_state.get('owner'):
            pg.admin('ALTER DATABASE %s OWNER TO %s' % (quote_ident(working), quote_ident(target_state['owner'])),
                     'give %s the owner of %s' % (working, target))
        flags = ([] if keep_owners else ['--no-owner']) + ([] if keep_acls else ['--no-acl'])
        t1 = time.monotonic()
        if role_mapping:
            # pg_restore writes the SQL script, the roles are mapped in it, psql runs it in one transaction
            script, mapped = path + '.sql', path + '.mapped.sql'
            pg.run([pg.program('pg_restore'), *flags, '-f', script, path], 'pg_restore of %s to a script' % key, None, timeout)
            report['role_mapped_lines'] = map_roles_script(script, mapped, role_mapping)
            pg.run([pg.program('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-d', working, '-f', mapped],
                   'restore of %s into %s with the roles mapped' % (key, working), working, timeout)
        else:
            pg.run([pg.program('pg_restore'), '--exit-on-error', '--no-password', *flags, '-d', working, path],
                   'pg_restore of %s into %s' % (key, working), working, timeout)
        report['restore_seconds'] = round(time.monotonic() - t1, 3)
        checks.append(check('restore', True, 'pg_restore into %s succeeded' % working))
        report['done'].append('restored the dump into %s' % working)
        check_restored(pg, working, tables, check_args[0], check_args[1], check_args[2], checks, report)
        failed = ['%s: %s' % (c['name'], c['reason']) for c in checks if not c['passed']]
        if failed:
            raise PgBackupError('the restored database failed its checks (%s)' % '; '.join(failed))
    except PgBackupError as exc:
        cleanup = _drop_work_database(pg, working, report) if created else 'no work database was created'
        raise PgBackupError('restore of %s into %s failed before the swap: %s. Database %s is untouched; %s'
                            % (key, target, exc, target, cleanup)) from None


def _wait_for_no_connections(pg, database, seconds=30):
    deadline = time.monotonic() + seconds
    while True:
        left = int(pg.admin("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()" % quote_literal(database),
                            'count the connections to %s' % database) or 0)
        if left == 0:
            return
        if time.monotonic() > deadline:
            raise PgBackupError('%d connections to %s remain after %ds' % (left, database, seconds))
        pg.admin("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                 % quote_literal(database), 'close the connections to %s' % database)
        time.sleep(0.2)


def _swap(pg, target, target_state, working, before, marker, report):  # noqa: PLR0917
    rename = 'ALTER DATABASE %s RENAME TO %s; ' % (quote_ident(working), quote_ident(target))
    mark = 'COMMENT ON DATABASE %s IS %s; ' % (quote_ident(target), quote_literal(marker))
    if not target_state['exists']:
        try:
            pg.admin('BEGIN; %s%sCOMMIT;' % (rename, mark), 'rename %s to %s' % (working, target))
        except PgBackupError as exc:
            cleanup = _drop_work_database(pg, working, report)
            raise PgBackupError('the restored database %s could not be renamed to %s: %s. Nothing else was changed; %s'
                                % (working, target, exc, cleanup)) from None
        report['done'].append('renamed %s to %s and marked it as restored' % (working, target))
        return
    keep = 'ALTER DATABASE %s RENAME TO %s; ' % (quote_ident(target), quote_ident(before))
    t0 = time.monotonic()
    try:
        pg.admin('ALTER DATABASE %s WITH ALLOW_CONNECTIONS false' % quote_ident(target), 'stop new connections to %s' % target)
    except PgBackupError as exc:
        cleanup = _drop_work_database(pg, working, report)
        raise PgBackupError('cannot swap the restored database in: %s. Database %s is untouched; %s' % (exc, target, cleanup)) from None
    try:
        _wait_for_no_connections(pg, target)
        pg.admin('BEGIN; %s%s%sCOMMIT;' % (keep, rename, mark), 'swap %s in for %s' % (working, target))
    except PgBackupError as exc:
        # The transaction did not commit: the target is still the original database.
        reopen = _allow_connections(pg, target)
        cleanup = _drop_work_database(pg, working, report)
        raise PgBackupError('the swap of %s for %s failed and was rolled back: %s. Database %s is the original (its connections were '
                            'closed; %s); %s' % (working, target, exc, target, reopen, cleanup)) from None
    # how long the target refused connections: from ALLOW_CONNECTIONS false to the commit of the renames
    report['swap_seconds'] = round(time.monotonic() - t0, 3)
    report['previous_database'] = before
    report['done'].append('renamed %s to %s and %s to %s in one transaction, marked %s as restored' % (target, before, working, target, target))
    report['reopened_previous'] = _allow_connections(pg, before)


def _allow_connections(pg, database):
    try:
        pg.admin('ALTER DATABASE %s WITH ALLOW_CONNECTIONS true' % quote_ident(database), 'allow connections to %s' % database)
        return 'connections to %s are allowed again' % database
    except PgBackupError as exc:
        return 'connections to %s are still refused (%s): run ALTER DATABASE ... WITH ALLOW_CONNECTIONS true' % (database, exc)
