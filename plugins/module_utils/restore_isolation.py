# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a restore test into scratch namespaces must not bring back to life, and how it is kept inert.

A restore test runs in the production cluster. Restored as they were, its objects would run a second copy of the
workloads, schedule CronJobs, start Jobs, claim load balancers and node ports, bind real hosts (Ingress, Gateway,
VirtualService), have GitOps controllers deploy, cert-manager order certificates and PVs outlive the test. So by default
the Restore excludes the resources that act on the outside or on other namespaces, sets ``restorePVs: false``, and
carries Velero resource modifiers (JSON patches, in a ConfigMap of Velero's namespace) that restore workloads with
0 replicas, CronJobs suspended, DaemonSets with a node selector no node has, and Services of type LoadBalancer or
NodePort as ClusterIP. Everything excluded or changed is reported, and the comparison leaves excluded objects out.

Only JSON patches with ``test`` guards are used: Velero applies them since v1.12, and a failed ``test`` skips the rule
instead of failing the item (so a field Velero already dropped, such as an auto-assigned nodePort, is no error).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

# group-resources (Velero's naming) never restored by a restore test
EXCLUDED_RESOURCES = (
    'jobs.batch',                                    # would run
    'ingresses.networking.k8s.io', 'ingresses.extensions',        # bind real hosts
    'gateways.networking.istio.io', 'virtualservices.networking.istio.io', 'destinationrules.networking.istio.io',
    'serviceentries.networking.istio.io', 'envoyfilters.networking.istio.io',
    'gateways.gateway.networking.k8s.io', 'httproutes.gateway.networking.k8s.io', 'grpcroutes.gateway.networking.k8s.io',
    'tcproutes.gateway.networking.k8s.io', 'tlsroutes.gateway.networking.k8s.io',
    'persistentvolumes', 'persistentvolumeclaims',   # new volumes that can outlive the test
    'horizontalpodautoscalers.autoscaling', 'scaledobjects.keda.sh',   # would scale the workloads back up
    'certificates.cert-manager.io', 'certificaterequests.cert-manager.io', 'orders.acme.cert-manager.io',
    'challenges.acme.cert-manager.io',               # would order real certificates
    'kustomizations.kustomize.toolkit.fluxcd.io', 'helmreleases.helm.toolkit.fluxcd.io',
    'applications.argoproj.io', 'applicationsets.argoproj.io',   # GitOps would deploy
    'prometheusrules.monitoring.coreos.com', 'alertmanagerconfigs.monitoring.coreos.com',   # duplicate alerts
)
SCALED = ('deployments.apps', 'statefulsets.apps', 'replicasets.apps', 'replicationcontrollers')
UNSCHEDULABLE_LABEL = 'machinenativeops.io/restore-test'
EXPOSED_SERVICE_TYPES = ('LoadBalancer', 'NodePort')
# fields that are only valid on exposed Services, removed with the type change
EXPOSED_SERVICE_FIELDS = ('externalTrafficPolicy', 'healthCheckNodePort', 'loadBalancerIP', 'loadBalancerSourceRanges',
                          'loadBalancerClass', 'allocateLoadBalancerNodePorts', 'externalIPs')


def _jp(operation, path, value=None):
    patch = {'operation': operation, 'path': path}
    if value is not None:
        patch['value'] = value if isinstance(value, str) else json.dumps(value)
    return patch


def _name_rule(group_resource, name, patches):
    return {'conditions': {'groupResource': group_resource, 'resourceNameRegex': '^%s$' % name.replace('.', '\\.')},
            'patches': patches}


def service_details(obj):
    """What the plan needs of a Service in the backup: its type, the ports with a nodePort, the exposed-only fields."""
    spec = (obj or {}).get('spec') or {}
    return {'type': spec.get('type') or 'ClusterIP',
            'node_ports': [[i, p['nodePort']] for i, p in enumerate(spec.get('ports') or []) if isinstance(p, dict) and p.get('nodePort')],
            'fields': [f for f in EXPOSED_SERVICE_FIELDS if f in spec]}


def plan(items, namespaces):
    """The isolation of a restore test of ``namespaces``: ``excluded_resources``, the resource-modifier document
    (``modifiers``) and a ``report`` of the objects of the backup that are excluded or changed, by what."""
    scope = [i for i in items if i['namespace'] in namespaces]
    report = {'excluded': {}, 'scaled_to_zero': [], 'suspended_cronjobs': [], 'unscheduled_daemonsets': [], 'services_to_cluster_ip': []}
    rules = [
        {'conditions': {'groupResource': gr}, 'patches': [_jp('add', '/spec/replicas', 0)]} for gr in SCALED
    ] + [
        {'conditions': {'groupResource': 'cronjobs.batch'}, 'patches': [_jp('add', '/spec/suspend', True)]},
        {'conditions': {'groupResource': 'daemonsets.apps'},
         'patches': [_jp('add', '/spec/template/spec/nodeSelector', {UNSCHEDULABLE_LABEL: 'never-scheduled'})]},
    ]
    for item in scope:
        where = '%s/%s' % (item['namespace'], item['name'])
        resource = item['resource']
        if resource in EXCLUDED_RESOURCES:
            report['excluded'].setdefault(resource, []).append(where)
        elif item.get('owned'):
            continue   # recreated by its restored (scaled-to-zero) controller, not restored itself
        elif resource in SCALED:
            report['scaled_to_zero'].append('%s %s' % (resource, where))
        elif resource == 'cronjobs.batch':
            report['suspended_cronjobs'].append(where)
        elif resource == 'daemonsets.apps':
            report['unscheduled_daemonsets'].append(where)
        elif resource == 'services' and (item.get('service') or {}).get('type') in EXPOSED_SERVICE_TYPES:
            details = item['service']
            report['services_to_cluster_ip'].append('%s (%s)' % (where, details['type']))
            guard = _jp('test', '/spec/type', details['type'])
            rules.append(_name_rule('services', item['name'], [guard, _jp('replace', '/spec/type', 'ClusterIP')]
                                    + [_jp('remove', '/spec/%s' % f) for f in details['fields']]))
            for index, port in details['node_ports']:
                # one rule per port: when Velero already dropped an auto-assigned nodePort, the test fails and skips it
                rules.append(_name_rule('services', item['name'], [_jp('test', '/spec/ports/%d/nodePort' % index, port),
                                                                   _jp('remove', '/spec/ports/%d/nodePort' % index)]))
    return {'excluded_resources': list(EXCLUDED_RESOURCES), 'restore_pvs': False,
            'modifiers': {'version': 'v1', 'resourceModifierRules': rules}, 'report': report}


def configmap(name, namespace, modifiers, labels=None):
    """The ConfigMap Velero reads the resource modifiers from (one key, the YAML document; JSON is YAML)."""
    return {'apiVersion': 'v1', 'kind': 'ConfigMap',
            'metadata': {'name': name, 'namespace': namespace, 'labels': dict(labels or {})},
            'data': {'resource-modifiers.yaml': json.dumps(modifiers, indent=1, sort_keys=True)}}
