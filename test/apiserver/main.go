// Checks the generated CRDs with the API server's own code (k8s.io/apiextensions-apiserver):
// CRD validation (structural schema, defaults, CEL compilation and cost), then, for each case,
// the pipeline a custom resource goes through on create/update: pruning, defaulting, OpenAPI
// validation, list-map uniqueness and the CEL rules (including the oldSelf transition rules).
// Input (stdin): {"crds": {"Kind": "path.yaml"}, "cases": [{"name","kind","object","oldObject"?}]}
// Output (stdout): {"crdErrors": {"Kind": [...]}, "results": [{"name", "errors": [...]}]}
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsinstall "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

type input struct {
	CRDs  map[string]string `json:"crds"`
	Cases []struct {
		Name      string                 `json:"name"`
		Kind      string                 `json:"kind"`
		Object    map[string]interface{} `json:"object"`
		OldObject map[string]interface{} `json:"oldObject"`
	} `json:"cases"`
}

type kindCheck struct {
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

func errs(list field.ErrorList) []string {
	out := []string{}
	for _, e := range list {
		out = append(out, e.Error())
	}
	return out
}

func main() {
	// apimachinery's JSON decoding, as the API server's: whole numbers become int64, not float64.
	var in input
	data, err := io.ReadAll(os.Stdin)
	if err == nil {
		err = utiljson.Unmarshal(data, &in)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	scheme := runtime.NewScheme()
	apiextensionsinstall.Install(scheme)
	decoder := serializer.NewCodecFactory(scheme).UniversalDecoder(apiextensions.SchemeGroupVersion)
	ctx := context.Background()

	crdErrors := map[string][]string{}
	checks := map[string]*kindCheck{}
	for kind, path := range in.CRDs {
		data, err := os.ReadFile(path)
		if err != nil {
			crdErrors[kind] = []string{err.Error()}
			continue
		}
		jsonData, err := yaml.YAMLToJSON(data)
		if err != nil {
			crdErrors[kind] = []string{err.Error()}
			continue
		}
		obj, _, err := decoder.Decode(jsonData, nil, nil)
		if err != nil {
			crdErrors[kind] = []string{err.Error()}
			continue
		}
		crd := obj.(*apiextensions.CustomResourceDefinition)
		crdErrors[kind] = errs(crdvalidation.ValidateCustomResourceDefinition(ctx, crd))
		// The internal type hoists a schema shared by every version to spec.validation.
		validation := crd.Spec.Validation
		if len(crd.Spec.Versions) > 0 && crd.Spec.Versions[0].Schema != nil {
			validation = crd.Spec.Versions[0].Schema
		}
		schema := validation.OpenAPIV3Schema
		s, err := structuralschema.NewStructural(schema)
		if err != nil {
			crdErrors[kind] = append(crdErrors[kind], err.Error())
			continue
		}
		validator, _, err := apiservervalidation.NewSchemaValidator(schema)
		if err != nil {
			crdErrors[kind] = append(crdErrors[kind], err.Error())
			continue
		}
		checks[kind] = &kindCheck{structural: s, validator: validator, cel: cel.NewValidator(s, true, celconfig.PerCallLimit)}
	}

	type result struct {
		Name      string                 `json:"name"`
		Errors    []string               `json:"errors"`
		Defaulted map[string]interface{} `json:"defaulted,omitempty"`
	}
	results := []result{}
	for _, c := range in.Cases {
		k := checks[c.Kind]
		if k == nil {
			results = append(results, result{Name: c.Name, Errors: []string{"no CRD for kind " + c.Kind}})
			continue
		}
		var list field.ErrorList
		prepare := func(o map[string]interface{}) {
			unknown := pruning.PruneWithOptions(o, k.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
			for _, u := range unknown {
				list = append(list, field.Invalid(field.NewPath(u), nil, "unknown field"))
			}
			structuraldefaulting.Default(o, k.structural)
		}
		prepare(c.Object)
		var old interface{}
		if c.OldObject != nil {
			prepare(c.OldObject)
			old = c.OldObject
			list = append(list, apiservervalidation.ValidateCustomResourceUpdate(nil, c.Object, c.OldObject, k.validator)...)
		} else {
			list = append(list, apiservervalidation.ValidateCustomResource(nil, c.Object, k.validator)...)
		}
		list = append(list, listtype.ValidateListSetsAndMaps(nil, k.structural, c.Object)...)
		celErrs, _ := k.cel.Validate(ctx, nil, k.structural, c.Object, old, celconfig.RuntimeCELCostBudget)
		list = append(list, celErrs...)
		results = append(results, result{Name: c.Name, Errors: errs(list), Defaulted: c.Object})
	}
	out, _ := json.Marshal(map[string]interface{}{"crdErrors": crdErrors, "results": results})
	fmt.Println(string(out))
}
