package imapwire

import "reflect"

func commandsEqual(a, b *Command) bool { return reflect.DeepEqual(a, b) }
