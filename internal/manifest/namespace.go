package manifest

import (
	"errors"
	"fmt"
)

// SetNamespace gives every object a namespace: its own, else ns. When
// explicit (the user passed -n), an object that names another namespace is
// an error, as with kubectl.
func SetNamespace(objs []Object, ns string, explicit bool) error {
	var errs []error
	for i := range objs {
		o := &objs[i]
		switch {
		case o.Namespace == "":
			o.Namespace = ns
		case explicit && o.Namespace != ns:
			errs = append(errs, fmt.Errorf("%s (%s): the namespace from the provided object %q does not match the namespace %q. You must pass '--namespace=%s' to perform this operation",
				o.Source, o.Ref(), o.Namespace, ns, o.Namespace))
			continue
		}
		if o.Service != nil {
			o.Service.Metadata.Namespace = o.Namespace
		}
		if o.NetworkPolicy != nil {
			o.NetworkPolicy.Metadata.Namespace = o.Namespace
		}
	}
	return errors.Join(errs...)
}

// CheckDuplicates refuses two objects of the same kind, namespace and name
// (call it after SetNamespace): applied together, one would silently win.
func CheckDuplicates(objs []Object) error {
	seen := map[string]Source{}
	var errs []error
	for _, o := range objs {
		key := o.Kind + "/" + o.Namespace + "/" + o.Name
		if first, ok := seen[key]; ok {
			errs = append(errs, fmt.Errorf("%s and %s both define %s in namespace %q; keep one", first, o.Source, o.Ref(), o.Namespace))
			continue
		}
		seen[key] = o.Source
	}
	return errors.Join(errs...)
}
