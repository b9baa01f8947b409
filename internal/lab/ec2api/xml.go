package ec2api

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
)

// response is a successful answer. Each one embeds envelope for the
// request id; the document element is named after the action when the
// response is written.
type response interface {
	setRequestID(id string)
}

// envelope holds what every EC2 Query response carries besides its
// action's fields.
//
// It deliberately has no XMLName: Go 1.26's encoding/xml panics reading
// an XMLName through an unexported embedded struct.
type envelope struct {
	RequestID string `xml:"requestId"`
}

func (e *envelope) setRequestID(id string) { e.RequestID = id }

// apiError is an error EC2 reports in its error document.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func apiErrorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// errorDocument is EC2's error body, <Response>. Unlike successful
// answers it has no namespace and spells the request id RequestID.
type errorDocument struct {
	Code      string `xml:"Errors>Error>Code"`
	Message   string `xml:"Errors>Error>Message"`
	RequestID string `xml:"RequestID"`
}

// writeResponse writes <ActionResponse xmlns="...">, the request id and
// the action's fields.
func writeResponse(w http.ResponseWriter, action, requestID string, r response) {
	r.setRequestID(requestID)
	start := xml.StartElement{
		Name: xml.Name{Local: action + "Response"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: namespace}},
	}
	writeXML(w, http.StatusOK, r, start)
}

func writeError(w http.ResponseWriter, requestID string, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = apiErrorf(http.StatusInternalServerError,
			"InternalError", "An internal error has occurred: %v", err)
	}
	doc := errorDocument{
		Code:      ae.code,
		Message:   ae.message,
		RequestID: requestID,
	}
	writeXML(w, ae.status, doc, xml.StartElement{Name: xml.Name{Local: "Response"}})
}

func writeXML(w http.ResponseWriter, status int, v any, start xml.StartElement) {
	var body bytes.Buffer
	body.WriteString(xml.Header)
	if err := xml.NewEncoder(&body).EncodeElement(v, start); err != nil {
		// Only a programming error in the response types gets here.
		http.Error(w, "marshal response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	w.Write(body.Bytes())
}
