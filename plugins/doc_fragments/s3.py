# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # S3 credentials and TLS options shared by the modules that read or write object storage; argument spec:
    # module_utils/backup_verify.py S3_ARG_SPEC. The endpoint, region, bucket and prefix are documented by each
    # module, because their defaults differ.
    DOCUMENTATION = r'''
options:
  s3_access_key:
    description:
      - S3 access key; default the AWS environment and configuration (E(AWS_ACCESS_KEY_ID)).
    type: str
  s3_secret_key:
    description:
      - S3 secret key; default the AWS environment and configuration (E(AWS_SECRET_ACCESS_KEY)).
    type: str
  s3_session_token:
    description:
      - S3 session token for temporary credentials.
    type: str
  s3_validate_certs:
    description:
      - Whether the S3 endpoint's TLS certificate is verified.
    type: bool
    default: true
  s3_ca_bundle:
    description:
      - CA bundle to verify the S3 endpoint's certificate with.
    type: path
  s3_timeout:
    description:
      - Connect timeout of S3 requests in seconds.
    type: float
    default: 10.0
'''
