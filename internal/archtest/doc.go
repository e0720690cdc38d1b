// Package archtest checks the layout rules of ARCHITECTURE.md on the code:
// imports only point down the layers, no protocol server imports another,
// and the leaf packages use only the outside modules chosen for them. It
// holds no code but its test.
package archtest
