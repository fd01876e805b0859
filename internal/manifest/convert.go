package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"

	v1 "github.com/knit-net/knit/api/v1"
)

// toKnitService converts a decoded Kubernetes Service to knit's type by a
// JSON round trip (knit's type uses the same field names). Server-written
// fields are dropped first; any other field left that knit's type lacks is
// an error naming it.
func toKnitService(o *Object, ks *corev1.Service) (*v1.Service, error) {
	k := ks.DeepCopy()
	dropServerFields(&k.ObjectMeta)
	k.Status = corev1.ServiceStatus{}
	var s v1.Service
	if err := roundTrip(o, k, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// toKnitNetworkPolicy is toKnitService for a NetworkPolicy (which has no
// status).
func toKnitNetworkPolicy(o *Object, kp *networkingv1.NetworkPolicy) (*v1.NetworkPolicy, error) {
	k := kp.DeepCopy()
	dropServerFields(&k.ObjectMeta)
	var p v1.NetworkPolicy
	if err := roundTrip(o, k, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// roundTrip encodes the Kubernetes object k and decodes it into knit's
// type out, refusing fields out lacks.
func roundTrip(o *Object, k, out any) error {
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("%s (%s): encode: %w", o.Source, o.Ref(), err)
	}
	strict, err := kjson.UnmarshalStrict(b, out, kjson.DisallowUnknownFields)
	if err != nil {
		return fmt.Errorf("%s (%s): convert to knit's %s: %w", o.Source, o.Ref(), o.Kind, err)
	}
	if len(strict) == 0 {
		return nil
	}
	fields := make([]string, len(strict))
	for i, e := range strict {
		fields[i] = e.Error()
		var fe kjson.FieldError
		if errors.As(e, &fe) {
			fields[i] = fmt.Sprintf("%q", fe.FieldPath())
		}
	}
	if len(fields) == 1 {
		return fmt.Errorf("error validating %s (%s): knit does not support the Kubernetes %s field %s; remove it", o.Source, o.Ref(), o.Kind, fields[0])
	}
	return fmt.Errorf("error validating %s (%s): knit does not support the Kubernetes %s fields %s; remove them", o.Source, o.Ref(), o.Kind, strings.Join(fields, ", "))
}

// dropServerFields clears metadata that API servers write, so that a
// manifest saved with get -o yaml applies again.
func dropServerFields(m *metav1.ObjectMeta) {
	m.UID = ""
	m.ResourceVersion = ""
	m.Generation = 0
	m.CreationTimestamp = metav1.Time{}
	m.ManagedFields = nil
	m.SelfLink = ""
}
