#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_backup
short_description: PostgreSQL dumps to S3 with a checksum, verified in a scratch database, restored by a checked swap
version_added: 0.1.0
description:
  - The deployment guide's 4-hourly database backup made verifiable, the sibling of M(machinenativeops.platform.velero_backup)
    for PostgreSQL.
  - O(action=backup) runs C(pg_dump --format=custom) of O(database) and uploads the dump to
    C(<key_prefix>/<database>/<database>-<YYYYmmdd-HHMMSS>.dump) with its SHA-256 in the object metadata and in a
    C(<key>.sha256) file (C(sha256sum) format). With O(max_age), no dump is taken while the newest one is younger.
  - O(action=verify) downloads a dump (O(key), else the newest of O(database)), checks its SHA-256 against the recorded one and
    its table of contents with C(pg_restore --list), restores it with C(pg_restore) into the scratch database
    O(scratch_database), compares the number of restored tables with the dump's, runs O(check_query) there, and drops the
    scratch database again. The scratch database may not be O(database), the dump's own database or O(maintenance_db)
    (refused), and an existing scratch database is only dropped when pg_backup created it (its comment says so).
  - O(action=restore) restores a dump (O(key), else the newest of O(database)) into O(target) without touching O(target)
    until the restored copy has passed its checks. The dump's SHA-256 and table of contents are checked, it is restored into
    the work database C(<target>_restoring) (owners and GRANTs kept unless O(keep_owners) / O(keep_acls) say otherwise),
    the restored tables are counted against the dump's and O(check_query) is run there. Then, in one transaction,
    O(target) is renamed to C(<target>_before_<YYYYmmddHHMMSS>) (kept until you drop it), the work database is renamed to
    O(target) and marked with C(COMMENT ON DATABASE) naming the dump and its SHA-256; a second run with the same dump finds
    the mark, changes nothing and only runs the check query. The connections to O(target) are closed for the swap.
  - O(action=restore) refuses a O(target) that exists and holds tables unless O(force=true), and refuses a work database
    C(<target>_restoring) it did not create. Any failure before the swap drops the work database and leaves O(target)
    untouched, and the error says so.
  - O(action=list) lists the dumps of O(database).
  - The PostgreSQL client programs are used (C(pg_dump), C(pg_restore), C(psql), from O(bindir) or the newest
    C(/usr/lib/postgresql/*/bin)); the password is passed in the environment, never on a command line.
author:
  - machinenativeops platform team (@machinenativeops)
extends_documentation_fragment:
  - machinenativeops.platform.s3
  - machinenativeops.platform.attributes
attributes:
  check_mode:
    support: full
    details:
      - O(action=backup) reports whether a dump is due without taking it. O(action=verify) checks the checksum and the table of
        contents but does not restore into a scratch database.
      - O(action=restore) reads the target, downloads the dump and checks its checksum and table of contents, and returns the
        steps it would take (RV(restore.steps)) with C(changed=true), or C(changed=false) when the target already carries the
        dump's mark; it creates, restores and renames nothing.
  diff_mode:
    support: none
options:
  action:
    description:
      - What to do.
    type: str
    choices: [backup, verify, restore, list]
    default: backup
  database:
    description:
      - The database to dump, or whose newest dump to verify, restore or list.
    type: str
    required: true
  key_prefix:
    description:
      - Prefix of the dumps in the bucket.
    type: str
    default: postgres
  key:
    description:
      - For O(action=verify) and O(action=restore), the dump; default the newest dump of O(database).
    type: str
  max_age:
    description:
      - For O(action=backup), seconds; no dump is taken while the newest dump of O(database) is younger (C(changed=false)).
      - Without it every run takes a dump.
    type: int
  dump_options:
    description:
      - Extra C(pg_dump) arguments, for example C(--exclude-table-data=audit_log).
    type: list
    elements: str
  scratch_database:
    description:
      - For O(action=verify), the database the dump is restored into; default C(<database>_verify). It is dropped first when
        it exists and dropped again afterwards. The login needs C(CREATEDB).
    type: str
  target:
    description:
      - For O(action=restore), the database restored into; default O(database). It may not be O(maintenance_db).
      - Up to 41 characters keep the work and kept names in full; longer names are shortened in those names.
      - The login needs C(CREATEDB), must own O(target) (or be a superuser) to rename it, and needs C(pg_signal_backend) to
        close the connections of other roles; when they cannot be closed within 30 seconds the swap is given up and
        O(target) stays as it was.
    type: str
  force:
    description:
      - For O(action=restore), restore even when O(target) exists and holds tables. The current O(target) is not dropped;
        it is kept as C(<target>_before_<YYYYmmddHHMMSS>).
    type: bool
    default: false
  keep_owners:
    description:
      - For O(action=restore), restore the objects' owners as the dump records them (the roles must exist), and give the work
        database the owner of the existing O(target). With V(false), C(pg_restore --no-owner) (everything owned by
        O(login_user)).
    type: bool
    default: true
  keep_acls:
    description:
      - For O(action=restore), restore the GRANTs the dump records (the roles must exist). With V(false),
        C(pg_restore --no-acl).
      - Database-level settings and GRANTs (C(GRANT CONNECT ON DATABASE)) are not part of a C(pg_dump) and are not restored.
    type: bool
    default: true
  role_mapping:
    description:
      - For O(action=restore), a dict from roles of the dump to roles of this server, replaced in the owners (C(ALTER ... OWNER TO)),
        GRANTs and REVOKEs, C(SET SESSION AUTHORIZATION) and default privileges of the dump, for a server whose roles are
        named differently. The dump is then written as SQL by C(pg_restore -f), the roles are replaced in those
        statements (never in table data), and C(psql --single-transaction) runs it into the work database.
      - Roles named elsewhere (for example in C(CREATE POLICY ... TO)) are not mapped.
    type: dict
  keep_scratch:
    description:
      - Keep the scratch database after the verification (for inspection).
    type: bool
    default: false
  check_query:
    description:
      - For O(action=verify), the query run in the scratch database (for O(action=restore), in the restored database, before
        the swap); its first value is compared with O(check_expect) or
        O(check_min). Default counts the tables outside the system schemas.
    type: str
  check_expect:
    description:
      - The exact text the check query must return.
    type: str
  check_min:
    description:
      - The smallest number the check query may return (when O(check_expect) is not given).
    type: float
    default: 1
  fail_on_error:
    description:
      - For O(action=verify), whether a failed check fails the module (a failed check always fails O(action=restore)).
    type: bool
    default: true
  timeout:
    description:
      - Seconds each of pg_dump, pg_restore and psql may run (enforced with C(timeout) when that program exists).
    type: int
    default: 3600
  login_host:
    description:
      - Host of the PostgreSQL server.
    type: str
    default: localhost
    aliases: [host]
  login_port:
    description:
      - Port of the PostgreSQL server.
    type: int
    default: 5432
    aliases: [port]
  login_user:
    description:
      - Role to connect as.
    type: str
    default: postgres
    aliases: [user]
  login_password:
    description:
      - Password of O(login_user).
    type: str
    aliases: [password]
  ssl_mode:
    description:
      - libpq C(sslmode).
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - CA certificate to verify the server with (libpq C(sslrootcert)).
    type: path
    aliases: [ssl_rootcert]
  maintenance_db:
    description:
      - Database connected to when the scratch and work databases are created, renamed and dropped.
    type: str
    default: postgres
  bindir:
    description:
      - Directory of the PostgreSQL client programs.
    type: path
  s3_endpoint_url:
    description:
      - URL of the S3 endpoint; AWS when omitted.
    type: str
  s3_region:
    description:
      - Region of the bucket.
    type: str
  s3_bucket:
    description:
      - The bucket holding the dumps (required).
    type: str
  s3_prefix:
    description:
      - Not used by this module (the dumps live under O(key_prefix)); accepted so the S3 options can be shared with
        M(machinenativeops.platform.velero_backup).
    type: str
requirements:
  - boto3 (Python library)
  - the PostgreSQL client programs pg_dump, pg_restore and psql
'''

EXAMPLES = r'''
- name: Dump the production database unless a dump younger than 4 hours exists
  machinenativeops.platform.pg_backup:
    action: backup
    database: machinenativeops
    max_age: 14400
    login_host: postgres.production.svc
    login_user: backup
    login_password: "{{ vault_postgres_backup_password }}"
    s3_bucket: machinenativeops-backups
    key_prefix: postgres

- name: Restore the newest dump into a scratch database and check it
  machinenativeops.platform.pg_backup:
    action: verify
    database: machinenativeops
    check_query: SELECT count(*) FROM orders
    check_min: 1
    login_host: postgres.production.svc
    login_user: backup
    login_password: "{{ vault_postgres_backup_password }}"
    s3_bucket: machinenativeops-backups
  register: db_verification

- name: Restore the newest dump over the database, keeping the current one as machinenativeops_before_<time>
  machinenativeops.platform.pg_backup:
    action: restore
    database: machinenativeops
    force: true
    check_query: SELECT count(*) FROM orders
    login_host: postgres.production.svc
    login_user: backup
    login_password: "{{ vault_postgres_backup_password }}"
    s3_bucket: machinenativeops-backups
  register: db_restore
'''

RETURN = r'''
dump:
  description: The dump taken (O(action=backup)) or the newest existing one when none was due.
  returned: when O(action=backup)
  type: dict
  contains:
    key: {description: Object key., type: str, sample: postgres/app/app-20260127-040000.dump}
    checksum_key: {description: Key of the C(.sha256) file., type: str}
    sha256: {description: SHA-256 of the dump., type: str}
    size: {description: Bytes., type: int}
    time: {description: 'When the dump was taken (UTC, ISO 8601).', type: str}
    dump_seconds: {description: Seconds pg_dump ran., type: float}
plan:
  description: Whether a dump was due and why.
  returned: when O(action=backup)
  type: dict
  sample: {due: false, reason: "the newest dump postgres/app/app-20260127-040000.dump is 600s old, younger than max_age 14400s"}
verification:
  description: The verification report.
  returned: when O(action=verify)
  type: dict
  contains:
    passed: {description: Whether every check passed., type: bool}
    checks:
      description:
        - Each check with C(name), C(passed), C(reason), among C(dump_present), C(checksum), C(archive_readable),
          C(scratch_database), C(restore), C(tables_restored), C(check_query), C(cleanup).
      type: list
      elements: dict
    failed_checks: {description: Names of the failed checks., type: list, elements: str}
    check_result: {description: First value returned by the check query., type: str}
    key: {description: The verified dump., type: str}
    sha256: {description: SHA-256 computed from the downloaded dump., type: str}
    tables_in_dump: {description: Tables in the dump's table of contents., type: int}
    seconds: {description: Seconds the verification took., type: float}
restore:
  description: What the restore did, or would do in check mode.
  returned: when O(action=restore)
  type: dict
  contains:
    action: {description: "V(restore), or V(none) when O(target) already carries the dump's mark.", type: str}
    reason: {description: Why., type: str}
    steps: {description: 'The steps of the restore, in order (also in check mode).', type: list, elements: str}
    done: {description: The steps actually taken., type: list, elements: str}
    key: {description: The dump., type: str}
    target: {description: The restored database., type: str}
    work_database: {description: The database the dump is restored into before the swap., type: str}
    previous_database: {description: 'The name the replaced O(target) is kept under (null when there was none).', type: str}
    marker: {description: The comment the restored database carries., type: str}
    checks: {description: 'The checks (C(name), C(passed), C(reason)).', type: list, elements: dict}
    check_result: {description: First value returned by the check query., type: str}
    tables_in_dump: {description: Tables in the dump's table of contents., type: int}
    target_tables: {description: Tables O(target) held before., type: int}
    swap_seconds: {description: 'Seconds O(target) refused connections during the swap (when it existed).', type: float}
    restore_seconds: {description: Seconds pg_restore ran., type: float}
    role_mapped_lines: {description: 'Statements of the dump whose roles O(role_mapping) replaced.', type: int}
    passed: {description: Whether every check passed., type: bool}
dumps:
  description: Dumps of O(database), oldest first (C(key), C(size), C(time), C(checksum_key)).
  returned: when O(action=list)
  type: list
  elements: dict
'''

import datetime

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.machinenativeops.platform.plugins.module_utils import pg_backup as PG
from ansible_collections.machinenativeops.platform.plugins.module_utils.backup_verify import (
    BOTO3_IMPORT_ERROR,
    HAS_BOTO3,
    S3_ARG_SPEC,
    S3Error,
    S3Store,
)


def argument_spec():
    spec = dict(
        action=dict(type='str', choices=['backup', 'verify', 'restore', 'list'], default='backup'),
        database=dict(type='str', required=True),
        key_prefix=dict(type='str', default='postgres', no_log=False),
        key=dict(type='str', no_log=False),
        max_age=dict(type='int'),
        dump_options=dict(type='list', elements='str'),
        scratch_database=dict(type='str'),
        target=dict(type='str'),
        force=dict(type='bool', default=False),
        keep_owners=dict(type='bool', default=True),
        keep_acls=dict(type='bool', default=True),
        role_mapping=dict(type='dict'),
        keep_scratch=dict(type='bool', default=False),
        check_query=dict(type='str'),
        check_expect=dict(type='str'),
        check_min=dict(type='float', default=1),
        fail_on_error=dict(type='bool', default=True),
        timeout=dict(type='int', default=3600),
    )
    spec.update(PG.PG_ARG_SPEC)
    spec.update(S3_ARG_SPEC)
    return spec


def command_runner(module):
    """pg_backup's runner: the client programs through run_command, under timeout(1) when it exists."""
    timeout_bin = module.get_bin_path('timeout')

    def run(argv, env, timeout):
        if timeout_bin and timeout:
            argv = [timeout_bin, str(int(timeout)), *argv]
        return module.run_command(argv, environ_update=env)

    return run


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib('boto3'), exception=BOTO3_IMPORT_ERROR)
    p = module.params
    if not p['s3_bucket']:
        module.fail_json(msg='s3_bucket is required')
    result = {'changed': False}
    try:
        PG.valid_identifier(p['database'])
        store = S3Store.from_params(dict(p, s3_prefix=''))
        dumps = PG.list_dumps(store, p['key_prefix'], p['database'])
        if p['action'] == 'list':
            result['dumps'] = dumps
            module.exit_json(**result)
        pg = PG.Pg(p, command_runner(module))
        if p['action'] == 'backup':
            now = datetime.datetime.now(datetime.timezone.utc)
            plan = PG.plan_backup(dumps, now, p['max_age'])
            result['plan'] = {'due': plan['due'], 'reason': plan['reason']}
            result['dump'] = plan['newest']
            if plan['due']:
                result['changed'] = True
                if not module.check_mode:
                    result['dump'] = PG.backup(pg, store, p['database'], p['key_prefix'], now=now, timeout=p['timeout'],
                                               extra_args=p['dump_options'])
            module.exit_json(**result)
        key = p['key'] or (dumps[-1]['key'] if dumps else None)
        if key is None:
            module.fail_json(msg='no dump of database %s under s3://%s/%s' % (p['database'], store.bucket, PG.dump_prefix(p['key_prefix'], p['database'])))
        if p['action'] == 'restore':
            report = PG.restore(pg, store, key, p['target'] or p['database'], force=p['force'], keep_owners=p['keep_owners'],
                                keep_acls=p['keep_acls'], check_query=p['check_query'], expect=p['check_expect'], minimum=p['check_min'],
                                timeout=p['timeout'], check_mode=module.check_mode, protected=[p['database']],
                                role_mapping=p['role_mapping'])
            result['restore'] = report
            result['changed'] = report['changed']
            if not report['passed']:
                reasons = ['%s: %s' % (c['name'], c['reason']) for c in report['checks'] if not c['passed']]
                module.fail_json(msg='database %s, restored earlier from %s, failed its check: %s' % (report['target'], key, '; '.join(reasons)),
                                 **result)
            module.exit_json(**result)
        report = PG.verify(pg, store, key, p['scratch_database'] or '%s_verify' % p['database'][:56], check_query=p['check_query'],
                           expect=p['check_expect'], minimum=p['check_min'], keep_scratch=p['keep_scratch'], timeout=p['timeout'],
                           restore=not module.check_mode, protected=[p['database']])
        result['verification'] = report
        # A kept scratch database is a change; check mode predicts it without restoring.
        if p['keep_scratch']:
            result['changed'] = True
        if not report['passed'] and p['fail_on_error']:
            reasons = ['%s: %s' % (c['name'], c['reason']) for c in report['checks'] if not c['passed']]
            module.fail_json(msg='dump %s failed verification: %s' % (key, '; '.join(reasons)), **result)
    except (PG.PgBackupError, S3Error) as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
